"""Measured progress on PostgreSQL: gate, forecast, RAG, automatic milestones, blockers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet.audit.models import AuditEvent
from fleet.context import Context
from fleet.db import transaction
from fleet.rollout.blockers import Blocker, BlockerSource
from fleet.rollout.counts import ESTATE_COUNTS, Counts, EstateCounts, counts_for
from fleet.rollout.models import DEVICES_ENROLLED, Milestone, PrisonPlan, Programme
from fleet.rollout.overview import PlanView, plan_views
from tests.estate.factories import seed_locations
from tests.rollout.builders import (
    TODAY,
    add_devices,
    go_dark,
    make_plan,
    set_online,
    snapshot,
)

# Milestones that fall due only around go-live, so early days are not overdue.
LATE_TEMPLATE = [
    {"key": DEVICES_ENROLLED, "name": "Devices enrolled", "offset_days": 0},
    {"key": "go_live", "name": "Go-live", "offset_days": 0},
]


def view(
    ctx: Context, plan_id: int, today: date, sources: Sequence[BlockerSource] = ()
) -> PlanView:
    with transaction(ctx.sessions) as session:
        plan = session.get(PrisonPlan, plan_id)
        assert plan is not None
        programme = session.get(Programme, plan.programme_id)
        assert programme is not None
        return plan_views(
            session=session, programme=programme, plans=[plan], today=today, sources=sources
        )[0]


def test_gate_holds_only_after_the_required_days_and_a_bad_day_resets_it(
    pg_context: Context,
) -> None:
    plan_id = make_plan(
        pg_context, planned=TODAY + timedelta(days=60), milestone_template=LATE_TEMPLATE
    )
    add_devices(pg_context, "MDI", 10)
    start = TODAY - timedelta(days=10)
    held = []
    for offset in range(11):
        day = start + timedelta(days=offset)
        # Day 5 dips to 90% online, below the 95% gate.
        set_online(pg_context, "MDI", 9 if offset == 5 else 10)
        snapshot(pg_context, day)
        gate = view(pg_context, plan_id, day).gate
        held.append((offset, gate.live, gate.qualifying_days))
    assert held == [
        (0, False, 1),
        (1, False, 2),
        (2, False, 3),
        (3, False, 4),
        (4, True, 5),
        (5, False, 0),
        (6, False, 1),
        (7, False, 2),
        (8, False, 3),
        (9, False, 4),
        (10, True, 5),
    ]


def test_gate_is_never_met_by_date_alone(pg_context: Context) -> None:
    plan_id = make_plan(pg_context, planned=TODAY - timedelta(days=30))
    current = view(pg_context, plan_id, TODAY)
    assert not current.gate.live
    assert current.rag.status == "red"
    assert any("has passed and the gate fails" in r for r in current.rag.reasons)


def test_a_prison_whose_devices_enrol_and_report_moves_from_red_to_green(
    pg_context: Context,
) -> None:
    seed_locations(pg_context)
    plan_id = make_plan(
        pg_context,
        planned=TODAY,
        expected=None,
        devices_per_cell=1,
        milestone_template=LATE_TEMPLATE,
    )
    start = TODAY - timedelta(days=14)
    assert view(pg_context, plan_id, start).rag.status == "red"
    cells = [f"MDI-{w}-{lnd}-{c:03d}" for w in (1, 2) for lnd in (1, 2) for c in (1, 2, 3)]
    statuses = []
    for offset in range(15):
        day = start + timedelta(days=offset)
        if offset < 6:
            for cell in cells[offset * 2 : offset * 2 + 2]:
                add_devices(pg_context, "MDI", 1, location=cell)
        snapshot(pg_context, day)
        statuses.append(view(pg_context, plan_id, day).rag.status)
    current = view(pg_context, plan_id, TODAY)
    assert current.expected == 12
    assert current.expected_source == "cells"
    assert current.counts.enrolled == 12
    assert current.gate.live
    assert statuses[0] == "red"
    assert statuses[-1] == "green"
    assert current.rag.reasons == []


def test_a_landing_that_goes_dark_turns_a_live_prison_amber_with_the_reason(
    pg_context: Context,
) -> None:
    seed_locations(pg_context)
    plan_id = make_plan(pg_context, planned=TODAY, expected=None, milestone_template=LATE_TEMPLATE)
    cells = [f"MDI-{w}-{lnd}-{c:03d}" for w in (1, 2) for lnd in (1, 2) for c in (1, 2, 3)]
    for cell in cells:
        add_devices(pg_context, "MDI", 1, location=cell)
    for back in range(5, 0, -1):
        snapshot(pg_context, TODAY - timedelta(days=back))
    assert view(pg_context, plan_id, TODAY).rag.status == "green"
    go_dark(pg_context, "MDI-2-2")
    current = view(pg_context, plan_id, TODAY)
    assert current.rag.status == "amber"
    assert current.rag.reasons == [
        "only 75.0% of expected devices online now (gate 95.0%)",
        "landing MDI-2-2 has gone dark: none of its 3 device(s) online",
    ]
    # In a bigger prison the share stays above the gate, but the dark landing still shows.
    add_devices(pg_context, "MDI", 100, location="MDI-1-1-001")
    with transaction(pg_context.sessions) as session:
        plan = session.get(PrisonPlan, plan_id)
        assert plan is not None
        plan.expected_devices = 112
    bigger = view(pg_context, plan_id, TODAY)
    assert bigger.online_pct_now == 97.3
    assert bigger.rag.status == "amber"
    assert bigger.rag.reasons == ["landing MDI-2-2 has gone dark: none of its 3 device(s) online"]


def test_forecast_from_the_enrolment_trend_sets_amber_or_red(pg_context: Context) -> None:
    plan_id = make_plan(
        pg_context, planned=TODAY + timedelta(days=2), expected=20, milestone_template=LATE_TEMPLATE
    )
    for back in (2, 1, 0):
        add_devices(pg_context, "MDI", 2)
        snapshot(pg_context, TODAY - timedelta(days=back))
    # 2, 4, 6 enrolled: 2 a day reaches 20 seven days after today, five days late.
    current = view(pg_context, plan_id, TODAY)
    assert current.forecast == TODAY + timedelta(days=7)
    assert current.rag.status == "amber"
    assert current.rag.reasons[0].endswith(
        "is 5 day(s) after planned " + (TODAY + timedelta(days=2)).isoformat()
    )
    with transaction(pg_context.sessions) as session:
        plan = session.get(PrisonPlan, plan_id)
        assert plan is not None
        plan.expected_devices = 100
    slow = view(pg_context, plan_id, TODAY)
    assert slow.rag.status == "red"
    assert "day(s) after planned" in slow.rag.reasons[0]


def test_devices_enrolled_completes_itself_at_the_threshold(pg_context: Context) -> None:
    plan_id = make_plan(pg_context, expected=10, enrolment_threshold_pct=90)
    add_devices(pg_context, "MDI", 8)
    snapshot(pg_context, TODAY - timedelta(days=1))

    def enrolled_milestone() -> Milestone:
        with transaction(pg_context.sessions) as session:
            found = session.scalars(
                select(Milestone).where(
                    Milestone.plan_id == plan_id, Milestone.key == DEVICES_ENROLLED
                )
            ).one()
            return found

    assert enrolled_milestone().done_date is None
    add_devices(pg_context, "MDI", 1)
    # Devices of other kinds do not count towards an in-cell phone programme.
    add_devices(pg_context, "MDI", 5, kind="kiosk")
    snapshot(pg_context, TODAY)
    done = enrolled_milestone()
    assert done.done_date == TODAY
    assert done.done_by == "measured"
    assert done.note == "9 of 10 devices enrolled"
    assert done.version == 2
    with transaction(pg_context.sessions) as session:
        audit = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "rollout.milestone.measured")
        ).one()
    assert (audit.actor, audit.prison_code, audit.detail["enrolled"]) == ("measured", "MDI", 9)


class _RecordedBlockers:
    """A blocker source fed from a fixed list, standing in for another domain's records."""

    def __init__(self, blocked: dict[str, list[Blocker]]) -> None:
        self.blocked = blocked

    def blockers(
        self, *, session: Session, prison_codes: Sequence[str]
    ) -> dict[str, list[Blocker]]:
        return {code: self.blocked.get(code, []) for code in prison_codes}


def test_overdue_milestones_and_plugged_in_blockers_turn_amber(pg_context: Context) -> None:
    plan_id = make_plan(pg_context, planned=TODAY + timedelta(days=40))
    add_devices(pg_context, "MDI", 10)
    for back in range(5, -1, -1):
        snapshot(pg_context, TODAY - timedelta(days=back))
    power = Blocker("fault", "fault MDI-7: no power on landing 2", TODAY, "fault:MDI-7")
    current = view(pg_context, plan_id, TODAY, sources=[_RecordedBlockers({"MDI": [power]})])
    assert current.gate.live
    assert current.rag.status == "amber"
    # Standard template: site survey (-56) and network ready (-42) are already overdue.
    assert [b.kind for b in current.blockers] == ["milestone", "milestone", "fault"]
    assert current.rag.reasons == [
        "milestone overdue: Site survey",
        "milestone overdue: Network ready",
        "blocker: fault MDI-7: no power on landing 2",
    ]


def test_a_programme_overview_shares_one_estate_count_for_its_max_age(
    pg_context: Context,
) -> None:
    add_devices(pg_context, "MDI", 4)
    add_devices(pg_context, "LEI", 2)
    kinds = ["in_cell_phone"]

    def count(max_age_s: float) -> Counts:
        with transaction(pg_context.sessions) as session:
            return counts_for(
                session=session, prison_codes=["MDI"], kinds=kinds, max_age_s=max_age_s
            )

    # Other tests in this process may have filled the shared count: start this database afresh.
    with transaction(pg_context.sessions) as session:
        ESTATE_COUNTS.get(session=session, kinds=kinds, max_age_s=0)
    first = count(60)
    assert (first.live["MDI"].enrolled, first.live["MDI"].online) == (4, 4)
    assert set(first.live) == {"MDI"}
    set_online(pg_context, "MDI", 1)
    shared = count(60)
    assert shared.counted_at == first.counted_at
    assert shared.live["MDI"].online == 4
    fresh = count(0)
    assert fresh.live["MDI"].online == 1
    assert fresh.counted_at > first.counted_at
    assert count(0.000001).live["MDI"].online == 1


def test_a_shared_count_half_its_max_age_old_is_served_while_a_recount_runs_behind(
    pg_context: Context,
) -> None:
    add_devices(pg_context, "MDI", 3)
    kinds = ["in_cell_phone"]
    now = [1000.0]
    shared = EstateCounts(clock=lambda: now[0])

    def get() -> Counts:
        with transaction(pg_context.sessions) as session:
            return shared.get(session=session, kinds=kinds, max_age_s=10)

    first = get()
    assert first.live["MDI"].online == 3
    set_online(pg_context, "MDI", 1)
    now[0] += 4  # under half the max age: served as it is, no recount
    assert get() is first
    shared.wait_for_recounts(5)
    assert get() is first
    now[0] += 2  # past half: this request is served the old count and starts a recount
    assert get() is first
    shared.wait_for_recounts(5)
    recounted = get()
    assert recounted.live["MDI"].online == 1
    assert recounted.counted_at > first.counted_at
    now[0] += 11  # past the max age of the recount: counted inline, never served stale
    set_online(pg_context, "MDI", 2)
    assert get().live["MDI"].online == 2
