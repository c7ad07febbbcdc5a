"""Faults moving through the workflow: who may take one on, and each transition logged."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from facilities.faults import sla
from facilities.faults.models import Fault, FaultEvent
from facilities.faults.workflow import PAUSING_REASONS, missing_requirement, plan
from fleet.audit.service import record
from fleet.auth.models import ROLES, User
from fleet.auth.permissions import allowed
from fleet.auth.service import get_user
from fleet.db import utcnow
from fleet.estate.service import Refused


def _assignable(*, session: Session, fault: Fault, username: str) -> str:
    """The username if that person can work this fault; Refused(422) naming the field if not."""
    user = get_user(session=session, username=username.strip())
    if (
        user is None
        or not user.active
        or not allowed(user.role, "faults:write")
        or (user.prison_codes and fault.prison_code not in user.prison_codes)
    ):
        raise Refused(
            422,
            f"{username.strip()[:64]!r} cannot be assigned faults in {fault.prison_code}; "
            "choose someone in facilities with this prison in their caseload",
            field="assignee",
        )
    return user.username


def assignable_people(*, session: Session, prison_code: str) -> list[str]:
    """Usernames of active people who may work faults in this prison, for an assign form."""
    roles = [role for role in ROLES if allowed(role, "faults:write")]
    users = session.scalars(
        select(User).where(User.active.is_(True), User.role.in_(roles)).order_by(User.username)
    )
    return [u.username for u in users if not u.prison_codes or prison_code in u.prison_codes]


def transition(
    *,
    session: Session,
    actor: str,
    fault: Fault,
    to: str,
    note: str | None = None,
    reason: str | None = None,
    resolution: str | None = None,
    version: int | None = None,
    now: datetime | None = None,
    assignee: str | None = None,
) -> FaultEvent:
    """Move the fault (IllegalMove if not allowed from here), keep the clock, log the event."""
    now = now or utcnow()
    if version is not None and version != fault.version:
        raise Refused(
            409,
            f"fault {fault.reference} changed since you loaded it (version {fault.version}, "
            f"you sent {version}); reload it and try again",
            field="version",
        )
    move = plan(fault.status, to)
    problem = missing_requirement(to, reason, resolution, note)
    if problem is not None:
        raise Refused(422, problem[1], field=problem[0])
    if move.to_status == "assigned":
        # Named people are checked; without a name the one assigning (already allowed) takes it.
        assignee = (
            _assignable(session=session, fault=fault, username=assignee) if assignee else actor
        )
    paused = sla.resume_clock(fault, now)
    if move.to_status == "on_hold":
        fault.hold_reason = reason
        if reason in PAUSING_REASONS:
            fault.paused_since = now
    elif fault.status == "on_hold":
        fault.hold_reason = None
    if fault.responded_at is None and move.to_status not in ("reported", "cancelled"):
        fault.responded_at = now
    if move.to_status == "assigned":
        fault.assignee = assignee
    if move.to_status == "cleared":
        fault.cleared_at, fault.resolution = now, (resolution or "").strip()
    elif move.action == "reopened":
        # Back to triage: whoever takes it next is decided again.
        fault.cleared_at, fault.resolution, fault.assignee = None, None, None
    elif move.to_status in ("closed", "cancelled"):
        fault.closed_at = now
    fault.status = move.to_status
    fault.version += 1
    fault.updated_at = now
    detail: dict[str, Any] = {}
    if reason:
        detail["reason"] = reason
    if move.to_status == "assigned":
        detail["assignee"] = fault.assignee
    if move.to_status == "cleared":
        detail["resolution"] = fault.resolution
    if paused:
        detail["paused_seconds"] = int(paused.total_seconds())
    event = FaultEvent(
        fault_id=fault.id,
        ts=now,
        actor=actor,
        action=move.action,
        from_status=move.from_status,
        to_status=move.to_status,
        note=note.strip() if note and note.strip() else None,
        detail=detail,
    )
    session.add(event)
    record(
        session=session,
        actor=actor,
        action=f"fault.{move.action}",
        target_type="fault",
        target_id=fault.reference,
        prison_code=fault.prison_code,
        detail={"from": move.from_status, "to": move.to_status, **detail},
    )
    session.flush()
    return event
