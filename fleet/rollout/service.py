"""Programmes, prison plans and milestones: validated writes, each one audited."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fleet.audit.service import record
from fleet.db import utcnow
from fleet.estate.models import Prison
from fleet.estate.service import Refused
from fleet.rollout.models import DEFAULT_TEMPLATE, Milestone, PrisonPlan, Programme
from fleet.rollout.schemas import (
    MilestoneUpdate,
    PlanCreate,
    PlanUpdate,
    ProgrammeCreate,
    ProgrammeUpdate,
)

__all__ = ["Refused"]


def default_template() -> list[dict[str, Any]]:
    return [{"key": k, "name": n, "offset_days": d} for k, n, d in DEFAULT_TEMPLATE]


def _check_dates(start: date, target: date) -> None:
    if target < start:
        raise Refused(
            422,
            f"the target date {target} is before the start date {start}; "
            "move the target on or after the start",
            field="target_date",
        )


def _check_template(template: Sequence[dict[str, Any]]) -> None:
    keys = [item["key"] for item in template]
    duplicate = next((k for k in keys if keys.count(k) > 1), None)
    if duplicate:
        raise Refused(
            422,
            f"milestone key {duplicate!r} appears twice; keys must be unique",
            field="milestone_template",
        )


def _check_name_free(session: Session, name: str, programme_id: int | None = None) -> None:
    stmt = select(Programme.id).where(func.lower(Programme.name) == name.lower())
    found = session.scalars(stmt).first()
    if found is not None and found != programme_id:
        raise Refused(
            422, f"a programme named {name!r} already exists; choose another name", field="name"
        )


def _check_go_live(programme: Programme, planned: date) -> None:
    if planned < programme.start_date:
        raise Refused(
            422,
            f"the planned go-live {planned} is before the programme starts on "
            f"{programme.start_date}; choose a later day",
            field="planned_go_live",
        )


def list_programmes(*, session: Session) -> list[Programme]:
    return list(session.scalars(select(Programme).order_by(Programme.start_date, Programme.id)))


def get_programme(*, session: Session, programme_id: int) -> Programme | None:
    return session.get(Programme, programme_id)


def create_programme(*, session: Session, actor: str, data: ProgrammeCreate) -> Programme:
    """A new programme; the standard milestone template unless one is given."""
    _check_dates(data.start_date, data.target_date)
    _check_name_free(session, data.name)
    template = (
        [item.model_dump() for item in data.milestone_template]
        if data.milestone_template is not None
        else default_template()
    )
    _check_template(template)
    programme = Programme(
        **data.model_dump(exclude={"milestone_template", "device_kinds"}),
        device_kinds=sorted(set(data.device_kinds)),
        milestone_template=template,
    )
    session.add(programme)
    session.flush()
    record(
        session=session,
        actor=actor,
        action="rollout.programme.create",
        target_type="programme",
        target_id=str(programme.id),
        detail={"name": programme.name},
    )
    return programme


def update_programme(
    *, session: Session, actor: str, programme: Programme, data: ProgrammeUpdate
) -> Programme:
    """Change the fields sent; a new template applies to prisons added from now on."""
    changes = data.model_dump(exclude_unset=True)
    nulls = [name for name, value in changes.items() if value is None]
    if nulls:
        raise Refused(
            422, f"{nulls[0]} cannot be null; omit it to keep the current value", field=nulls[0]
        )
    _check_dates(
        changes.get("start_date", programme.start_date),
        changes.get("target_date", programme.target_date),
    )
    if "name" in changes:
        _check_name_free(session, changes["name"], programme.id)
    if "milestone_template" in changes:
        _check_template(changes["milestone_template"])
    if "device_kinds" in changes:
        changes["device_kinds"] = sorted(set(changes["device_kinds"]))
    for name, value in changes.items():
        setattr(programme, name, value)
    programme.updated_at = utcnow()
    session.flush()
    record(
        session=session,
        actor=actor,
        action="rollout.programme.update",
        target_type="programme",
        target_id=str(programme.id),
        detail={"fields": sorted(changes)},
    )
    return programme


def delete_programme(*, session: Session, actor: str, programme: Programme) -> None:
    for plan in plans_of(session=session, programme_id=programme.id):
        session.delete(plan)
    session.flush()
    record(
        session=session,
        actor=actor,
        action="rollout.programme.delete",
        target_type="programme",
        target_id=str(programme.id),
        detail={"name": programme.name},
    )
    session.delete(programme)
    session.flush()


def plans_of(
    *, session: Session, programme_id: int, caseload: Sequence[str] | None = None
) -> list[PrisonPlan]:
    """The programme's plans by wave then prison, limited to a caseload when one is given."""
    stmt = select(PrisonPlan).where(PrisonPlan.programme_id == programme_id)
    if caseload:
        stmt = stmt.where(PrisonPlan.prison_code.in_(caseload))
    return list(session.scalars(stmt.order_by(PrisonPlan.wave, PrisonPlan.prison_code)))


def count_plans(*, session: Session, caseload: Sequence[str] | None) -> dict[int, int]:
    stmt = select(PrisonPlan.programme_id, func.count()).group_by(PrisonPlan.programme_id)
    if caseload:
        stmt = stmt.where(PrisonPlan.prison_code.in_(caseload))
    return {pid: int(n) for pid, n in session.execute(stmt).all()}


def get_plan(*, session: Session, programme_id: int, prison_code: str) -> PrisonPlan | None:
    return session.scalars(
        select(PrisonPlan).where(
            PrisonPlan.programme_id == programme_id,
            PrisonPlan.prison_code == prison_code.upper(),
        )
    ).first()


def milestones_of(*, session: Session, plan_ids: Sequence[int]) -> dict[int, list[Milestone]]:
    found: dict[int, list[Milestone]] = {pid: [] for pid in plan_ids}
    if plan_ids:
        stmt = select(Milestone).where(Milestone.plan_id.in_(plan_ids))
        for row in session.scalars(stmt.order_by(Milestone.plan_id, Milestone.position)):
            found[row.plan_id].append(row)
    return found


def add_plan(*, session: Session, actor: str, programme: Programme, data: PlanCreate) -> PrisonPlan:
    """Add a prison to the programme with milestones from the programme's template."""
    code = data.prison_code.upper()
    if session.get(Prison, code) is None:
        raise Refused(
            422, f"there is no prison with code {code!r}; see /api/v1/prisons", field="prison_code"
        )
    if get_plan(session=session, programme_id=programme.id, prison_code=code) is not None:
        raise Refused(
            422,
            f"this programme already has a plan for {code}; update that plan instead",
            field="prison_code",
        )
    _check_go_live(programme, data.planned_go_live)
    plan = PrisonPlan(
        programme_id=programme.id,
        prison_code=code,
        wave=data.wave,
        planned_go_live=data.planned_go_live,
        expected_devices=data.expected_devices,
    )
    session.add(plan)
    session.flush()
    for position, item in enumerate(programme.milestone_template):
        session.add(
            Milestone(
                plan_id=plan.id,
                key=item["key"],
                name=item["name"],
                position=position,
                due_date=data.planned_go_live + timedelta(days=int(item["offset_days"])),
            )
        )
    session.flush()
    record(
        session=session,
        actor=actor,
        action="rollout.plan.add",
        target_type="programme",
        target_id=str(programme.id),
        prison_code=code,
        detail={"wave": plan.wave, "planned_go_live": plan.planned_go_live.isoformat()},
    )
    return plan


def update_plan(*, session: Session, actor: str, plan: PrisonPlan, data: PlanUpdate) -> PrisonPlan:
    """Change wave, planned go-live or expected count; null expected derives it again."""
    changes = data.model_dump(exclude_unset=True)
    for name in ("wave", "planned_go_live"):
        if name in changes and changes[name] is None:
            raise Refused(
                422, f"{name} cannot be null; omit it to keep the current value", field=name
            )
    moved = changes.get("planned_go_live")
    if moved is not None:
        programme = session.get(Programme, plan.programme_id)
        assert programme is not None
        _check_go_live(programme, moved)
    if moved is not None and moved != plan.planned_go_live:
        # Open milestones keep their distance from go-live; finished ones keep their history.
        shift = moved - plan.planned_go_live
        for milestone in milestones_of(session=session, plan_ids=[plan.id])[plan.id]:
            if milestone.done_date is None and milestone.due_date is not None:
                milestone.due_date += shift
                milestone.version += 1
    for name, value in changes.items():
        setattr(plan, name, value)
    session.flush()
    record(
        session=session,
        actor=actor,
        action="rollout.plan.update",
        target_type="programme",
        target_id=str(plan.programme_id),
        prison_code=plan.prison_code,
        detail={k: (v.isoformat() if isinstance(v, date) else v) for k, v in changes.items()},
    )
    return plan


def remove_plan(*, session: Session, actor: str, plan: PrisonPlan) -> None:
    record(
        session=session,
        actor=actor,
        action="rollout.plan.remove",
        target_type="programme",
        target_id=str(plan.programme_id),
        prison_code=plan.prison_code,
    )
    session.delete(plan)
    session.flush()


def update_milestone(
    *, session: Session, actor: str, plan: PrisonPlan, milestone_id: int, data: MilestoneUpdate
) -> Milestone:
    """Apply an edit made against `data.version`; a newer stored version is a 409."""
    milestone = session.get(Milestone, milestone_id, with_for_update=True)
    if milestone is None or milestone.plan_id != plan.id:
        raise Refused(404, "milestone not found")
    if milestone.version != data.version:
        raise Refused(
            409,
            f"this milestone was changed by someone else (now version {milestone.version}, "
            f"you sent {data.version}); reload it and apply your change again",
            extra={"current_version": milestone.version},
        )
    changes = data.model_dump(exclude_unset=True, exclude={"version"})
    for name in ("owner", "note"):
        if name in changes and changes[name] is None:
            changes[name] = ""
    for name, value in changes.items():
        setattr(milestone, name, value)
    if "done_date" in changes:
        milestone.done_by = actor if milestone.done_date else ""
    milestone.version += 1
    session.flush()
    record(
        session=session,
        actor=actor,
        action="rollout.milestone.update",
        target_type="milestone",
        target_id=str(milestone.id),
        prison_code=plan.prison_code,
        detail={k: (v.isoformat() if isinstance(v, date) else v) for k, v in changes.items()},
    )
    return milestone
