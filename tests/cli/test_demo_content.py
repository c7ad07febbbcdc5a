"""The demo's sample work: a programme, faults and job templates, added once."""

from __future__ import annotations

from sqlalchemy import func, select

from facilities.faults.models import Fault
from fleet.cli.demo_content import DEMO_FAULTS, DEMO_PROGRAMME, seed_demo_content
from fleet.context import Context
from fleet.db import transaction
from fleet.jobs.catalogue import templates
from fleet.jobs.models import JobTemplate
from fleet.rollout.models import PrisonPlan, Programme
from fleet.simulate.enrol import ensure_locations


def _counts(ctx: Context) -> tuple[int, int, int, int]:
    with ctx.sessions() as session:
        return (
            session.scalar(select(func.count(Programme.id))) or 0,
            session.scalar(select(func.count(PrisonPlan.id))) or 0,
            session.scalar(select(func.count(Fault.id))) or 0,
            session.scalar(select(func.count(JobTemplate.id))) or 0,
        )


def test_demo_content_is_added_once_and_is_real_work(pg_context: Context) -> None:
    with transaction(pg_context.sessions) as session:
        for code in ("MDI", "LEI"):
            ensure_locations(session=session, prison_code=code, cells_needed=20)
    said: list[str] = []
    seed_demo_content(pg_context, ["MDI", "LEI"], 20, said.append)
    assert _counts(pg_context) == (1, 2, len(DEMO_FAULTS), len(templates()))
    with pg_context.sessions() as session:
        programme = session.scalars(select(Programme)).one()
        assert programme.name == DEMO_PROGRAMME
        plans = session.scalars(select(PrisonPlan).order_by(PrisonPlan.wave)).all()
        assert [(p.prison_code, p.expected_devices) for p in plans] == [("MDI", 20), ("LEI", 20)]
        faults = session.scalars(select(Fault)).all()
        assert {f.prison_code for f in faults} == {"MDI"}
        assert any(f.blocks_rollout for f in faults), "one demo fault blocks the rollout"
    assert len(said) == 3, said

    said.clear()
    seed_demo_content(pg_context, ["MDI", "LEI"], 20, said.append)
    assert _counts(pg_context) == (1, 2, len(DEMO_FAULTS), len(templates()))
    assert said == [], "a second run adds nothing and says nothing"
