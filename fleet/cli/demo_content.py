"""Sample work for `estate demo`: a rollout programme, faults to clear and job templates."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, timedelta

from sqlalchemy import func, select

from fleet.context import Context
from fleet.db import transaction, utcnow

DEMO_PROGRAMME = "In-cell telephony refresh"
DEMO_ACTOR = "demo"
# (location code suffix, category, priority, description, blocks rollout)
DEMO_FAULTS = (
    ("1-1-001", "in_cell_telephony", "P2", "Handset has no dial tone", False),
    ("1-1-004", "door_lock_cell_bell", "P1", "Cell bell does not sound on the landing", False),
    ("1-2", "network_point", "P2", "Network point at the landing office is dead", True),
    ("2-1-003", "power_electrical", "P3", "Power socket by the desk is loose", False),
    ("2", "heating", "P3", "Radiators cold along the whole wing", False),
)


def seed_demo_content(
    ctx: Context, codes: Sequence[str], expected_devices: int, progress: Callable[[str], None]
) -> None:
    """Add what the demo's people work on, once: running the demo again adds nothing."""
    _programme(ctx, codes, expected_devices, progress)
    if codes:
        _faults(ctx, codes[0], progress)
    _job_templates(ctx, progress)


def _programme(
    ctx: Context, codes: Sequence[str], expected_devices: int, progress: Callable[[str], None]
) -> None:
    from fleet.rollout.models import Programme
    from fleet.rollout.schemas import PlanCreate, ProgrammeCreate
    from fleet.rollout.service import add_plan, create_programme

    today = date.today()
    with transaction(ctx.sessions) as session:
        if session.scalar(select(Programme.id).where(Programme.name == DEMO_PROGRAMME)):
            return
        programme = create_programme(
            session=session,
            actor=DEMO_ACTOR,
            data=ProgrammeCreate.model_validate(
                {
                    "name": DEMO_PROGRAMME,
                    "description": "New in-cell phones in every cell of the first wave.",
                    "owner": "rollout",
                    "device_kinds": ["in_cell_phone"],
                    "start_date": today - timedelta(days=60),
                    "target_date": today + timedelta(days=120),
                }
            ),
        )
        for wave, code in enumerate(codes, start=1):
            add_plan(
                session=session,
                actor=DEMO_ACTOR,
                programme=programme,
                data=PlanCreate.model_validate(
                    {
                        "prison_code": code,
                        "wave": wave,
                        "planned_go_live": today + timedelta(days=14 * wave - 21),
                        # The demo enrols a sample of each prison, not a phone in every cell.
                        "expected_devices": expected_devices,
                    }
                ),
            )
    progress(f"rollout programme {DEMO_PROGRAMME!r} with {len(codes)} prisons")


def _faults(ctx: Context, prison: str, progress: Callable[[str], None]) -> None:
    from facilities.faults.models import Fault
    from facilities.faults.service import report_fault

    with transaction(ctx.sessions) as session:
        if session.scalar(select(func.count(Fault.id)).where(Fault.prison_code == prison)):
            return
        now = utcnow()
        for age, (suffix, category, priority, description, blocks) in enumerate(DEMO_FAULTS):
            report_fault(
                session=session,
                actor="facilities",
                location_path=f"{prison}-{suffix}",
                category=category,
                priority=priority,
                description=description,
                blocks_rollout=blocks,
                now=now - timedelta(hours=6 * age),
            )
    progress(f"{len(DEMO_FAULTS)} faults reported at {prison}")


def _job_templates(ctx: Context, progress: Callable[[str], None]) -> None:
    from fleet.jobs import catalogue, service
    from fleet.jobs.models import JobTemplate

    with transaction(ctx.sessions) as session:
        existing = set(session.scalars(select(JobTemplate.name)))
        missing = [data for data in catalogue.templates() if data.name not in existing]
        for data in missing:
            service.create_template(session=session, actor=DEMO_ACTOR, data=data, now=utcnow())
    if missing:
        progress(f"{len(missing)} job templates for the shipped playbooks")
