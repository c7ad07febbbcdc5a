"""Respond/clear targets per category x priority, due times, pauses and the at-risk/breach check."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from facilities.faults.models import CATEGORIES, PRIORITIES, Fault, FaultTarget
from facilities.faults.workflow import OPEN_STATUSES

HOUR = 60
DAY = 24 * HOUR
# A cell without a working bell, phone or door, or a fire-safety fault, is a welfare matter.
URGENT_CATEGORIES = frozenset({"door_lock_cell_bell", "in_cell_telephony", "fire_safety"})
# Share of the time to a target used up before a fault counts as at risk.
AT_RISK_SHARE = 0.75


@dataclass(frozen=True)
class Target:
    category: str
    priority: str
    respond_minutes: int
    clear_minutes: int
    customised: bool


def default_minutes(category: str, priority: str) -> tuple[int, int]:
    """The built-in (respond, clear) minutes, in calendar time."""
    if priority == "P1":
        return (1 * HOUR, 4 * HOUR) if category in URGENT_CATEGORIES else (2 * HOUR, 8 * HOUR)
    if priority == "P2":
        return (4 * HOUR, 1 * DAY) if category in URGENT_CATEGORIES else (8 * HOUR, 2 * DAY)
    if priority == "P3":
        return (1 * DAY, 5 * DAY)
    return (5 * DAY, 20 * DAY)


def target_for(*, session: Session, category: str, priority: str) -> Target:
    row = session.scalars(
        select(FaultTarget).where(
            FaultTarget.category == category, FaultTarget.priority == priority
        )
    ).first()
    if row is not None:
        return Target(category, priority, row.respond_minutes, row.clear_minutes, True)
    return Target(category, priority, *default_minutes(category, priority), False)


def all_targets(*, session: Session) -> list[Target]:
    overrides = {(t.category, t.priority): t for t in session.scalars(select(FaultTarget))}
    out = []
    for category in CATEGORIES:
        for priority in PRIORITIES:
            row = overrides.get((category, priority))
            if row is not None:
                out.append(Target(category, priority, row.respond_minutes, row.clear_minutes, True))
            else:
                out.append(Target(category, priority, *default_minutes(category, priority), False))
    return out


def set_target(
    *, session: Session, actor: str, category: str, priority: str, respond: int, clear: int
) -> Target:
    """Store an override; applies to faults reported from now on."""
    if not 0 < respond <= clear:
        raise ValueError("times must satisfy 0 < respond_minutes <= clear_minutes")
    row = session.scalars(
        select(FaultTarget).where(
            FaultTarget.category == category, FaultTarget.priority == priority
        )
    ).first()
    if row is None:
        row = FaultTarget(category=category, priority=priority)
        session.add(row)
    row.respond_minutes, row.clear_minutes, row.updated_by = respond, clear, actor
    session.flush()
    return Target(category, priority, respond, clear, True)


def due_times(target: Target, reported_at: datetime) -> tuple[datetime, datetime]:
    return (
        reported_at + timedelta(minutes=target.respond_minutes),
        reported_at + timedelta(minutes=target.clear_minutes),
    )


def resume_clock(fault: Fault, now: datetime) -> timedelta:
    """End a pause: the time spent paused is added to both due times; returns that time."""
    if fault.paused_since is None:
        return timedelta(0)
    paused = max(now - fault.paused_since, timedelta(0))
    fault.due_respond_at += paused
    fault.due_clear_at += paused
    fault.paused_since = None
    fault.paused_seconds = (fault.paused_seconds or 0) + int(paused.total_seconds())
    return paused


def active_due(fault: Fault) -> datetime:
    """The respond-by time until someone responds, then the clear-by time."""
    return fault.due_respond_at if fault.responded_at is None else fault.due_clear_at


def used_share(fault: Fault, now: datetime) -> float:
    """How much of the active target has gone, leaving out time on hold (1.0 = due now)."""
    # Pauses moved the due time on and used none of the target, so both sides leave them out.
    paused = fault.paused_seconds or 0
    window = (active_due(fault) - fault.reported_at).total_seconds() - paused
    used = (now - fault.reported_at).total_seconds() - paused
    return 1.0 if window <= 0 else used / window


@dataclass(frozen=True)
class SlaChange:
    fault_id: int
    reference: str
    prison_code: str
    kind: str  # "at_risk" or "breached"
    due: datetime
    priority: str
    category: str


def check(*, session: Session, now: datetime) -> list[SlaChange]:
    """Mark open, running faults at risk or breached, each at most once; returns what changed."""
    faults: Sequence[Fault] = session.scalars(
        select(Fault)
        .where(
            Fault.status.in_(OPEN_STATUSES),
            Fault.paused_since.is_(None),
            or_(Fault.at_risk_at.is_(None), Fault.breached_at.is_(None)),
        )
        .order_by(Fault.id)
        .with_for_update(skip_locked=True)
    ).all()
    changes = []
    for fault in faults:
        share = used_share(fault, now)
        due = active_due(fault)
        if fault.breached_at is None and now > due:
            fault.breached_at = now
            if fault.at_risk_at is None:
                fault.at_risk_at = now
            changes.append(_change(fault, "breached", due))
        elif fault.at_risk_at is None and share >= AT_RISK_SHARE:
            fault.at_risk_at = now
            changes.append(_change(fault, "at_risk", due))
    session.flush()
    return changes


def _change(fault: Fault, kind: str, due: datetime) -> SlaChange:
    return SlaChange(
        fault.id, fault.reference, fault.prison_code, kind, due, fault.priority, fault.category
    )
