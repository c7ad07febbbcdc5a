"""Faults: reporting with a per-prison reference, finding, moving through the workflow."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, literal, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session

from facilities.faults import sla
from facilities.faults.models import Fault, FaultAttachment, FaultCounter, FaultEvent
from facilities.faults.recurring import flag_recurring
from facilities.faults.workflow import PAUSING_REASONS, missing_requirement, plan
from fleet.api.pagination import bounded_count
from fleet.audit.service import record
from fleet.auth.models import ROLES, User
from fleet.auth.permissions import allowed
from fleet.auth.service import get_user
from fleet.db import utcnow
from fleet.devices.models import Device
from fleet.estate.models import Location
from fleet.estate.service import Refused, location_by_path, subtree_ids

log = logging.getLogger(__name__)

SORT_COLUMNS: dict[str, InstrumentedAttribute[Any]] = {
    "reported_at": Fault.reported_at,
    "priority": Fault.priority,
    "due_clear_at": Fault.due_clear_at,
    "reference": Fault.reference,
}
SORTS = tuple(s for name in SORT_COLUMNS for s in (name, "-" + name))


def next_number(*, session: Session, prison_code: str) -> int:
    """The prison's next fault number; the row lock makes concurrent reports queue, not collide."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(FaultCounter)
        .values(prison_code=prison_code, last_number=0)
        .on_conflict_do_nothing(index_elements=["prison_code"])
    )
    number = session.execute(
        update(FaultCounter)
        .where(FaultCounter.prison_code == prison_code)
        .values(last_number=FaultCounter.last_number + 1)
        .returning(FaultCounter.last_number)
    ).scalar_one()
    return int(number)


def reference(prison_code: str, number: int) -> str:
    return f"{prison_code}-F-{number:06d}"


def report_fault(
    *,
    session: Session,
    actor: str,
    location_path: str,
    category: str,
    priority: str,
    description: str,
    device_id: str | None = None,
    team: str | None = None,
    visible: Sequence[str] | None = None,
    now: datetime | None = None,
    source: str = "staff",
    blocks_rollout: bool = False,
    idempotency_key: str | None = None,
) -> Fault:
    """Log a fault at a location (and optionally a device there), with due times from targets."""
    now = now or utcnow()
    location = location_by_path(session=session, path=location_path.strip())
    if location is None or (visible is not None and location.prison_code not in visible):
        raise Refused(
            422,
            f"no location {location_path.strip().upper()!r}; search /api/v1/locations",
            field="location",
        )
    if device_id:
        device = session.get(Device, device_id.strip())
        if device is None or device.prison_code != location.prison_code:
            raise Refused(
                422,
                f"no device {device_id.strip()!r} in {location.prison_code}",
                field="device",
            )
        device_id = device.id
    number = next_number(session=session, prison_code=location.prison_code)
    due_respond, due_clear = sla.due_times(
        sla.target_for(session=session, category=category, priority=priority), now
    )
    fault = Fault(
        reference=reference(location.prison_code, number),
        prison_code=location.prison_code,
        number=number,
        location_id=location.id,
        device_id=device_id or None,
        category=category,
        priority=priority,
        status="reported",
        description=description.strip(),
        reporter=actor,
        team=team.strip() if team and team.strip() else None,
        reported_at=now,
        source=source,
        blocks_rollout=blocks_rollout,
        idempotency_key=idempotency_key,
        due_respond_at=due_respond,
        due_clear_at=due_clear,
        updated_at=now,
    )
    session.add(fault)
    session.flush()
    session.add(
        FaultEvent(
            fault_id=fault.id,
            ts=now,
            actor=actor,
            action="reported",
            from_status=None,
            to_status="reported",
            note=None,
            detail={
                "priority": priority,
                "category": category,
                "location": location.path,
                "source": source,
            },
        )
    )
    flag_recurring(session=session, fault=fault, now=now)
    record(
        session=session,
        actor=actor,
        action="fault.reported",
        target_type="fault",
        target_id=fault.reference,
        prison_code=fault.prison_code,
        detail={"location": location.path, "category": category, "priority": priority},
    )
    session.flush()
    return fault


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


def report_once(
    *,
    session: Session,
    actor: str,
    idempotency_key: str | None,
    location_path: str,
    category: str,
    priority: str,
    description: str,
    device_id: str | None = None,
    team: str | None = None,
    visible: Sequence[str] | None = None,
    blocks_rollout: bool = False,
) -> tuple[Fault, bool]:
    """(fault, created): a form sent again with its key gives back the first fault, not a second."""
    if idempotency_key:
        earlier = by_idempotency_key(session=session, reporter=actor, key=idempotency_key)
        if earlier is not None:
            return earlier, False
    try:
        # A savepoint: if a twin request with the same key wins the race, only this part undoes.
        with session.begin_nested():
            fault = report_fault(
                session=session,
                actor=actor,
                location_path=location_path,
                category=category,
                priority=priority,
                description=description,
                device_id=device_id,
                team=team,
                visible=visible,
                blocks_rollout=blocks_rollout,
                idempotency_key=idempotency_key,
            )
    except IntegrityError:
        twin = (
            by_idempotency_key(session=session, reporter=actor, key=idempotency_key)
            if idempotency_key
            else None
        )
        if twin is None:
            raise
        log.info("fault %s was submitted twice with one idempotency key", twin.reference)
        return twin, False
    return fault, True


def by_idempotency_key(*, session: Session, reporter: str, key: str) -> Fault | None:
    """The fault this reporter already submitted with this key, if any."""
    return session.scalars(
        select(Fault).where(Fault.reporter == reporter, Fault.idempotency_key == key)
    ).first()


@dataclass(frozen=True)
class FaultFilters:
    prisons: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    priorities: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    within: int | None = None  # location id: at or beneath it
    device_id: str | None = None
    breached: bool | None = None
    at_risk: bool | None = None
    recurring: bool | None = None
    source: str | None = None
    blocks_rollout: bool | None = None
    assignee: str | None = None
    q: str | None = None  # text in the reference, description or location code


@dataclass(frozen=True)
class FaultPage:
    faults: list[Fault]
    count: int
    last: list[Any] | None = field(default=None)
    capped: bool = False  # more than `count` match: counting stopped at the cap


def _conditions(filters: FaultFilters, scope: Sequence[str] | None) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if scope is not None:
        conds.append(Fault.prison_code.in_(scope))
    if filters.prisons:
        conds.append(Fault.prison_code.in_(filters.prisons))
    if filters.statuses:
        conds.append(Fault.status.in_(filters.statuses))
    if filters.priorities:
        conds.append(Fault.priority.in_(filters.priorities))
    if filters.categories:
        conds.append(Fault.category.in_(filters.categories))
    if filters.within is not None:
        conds.append(Fault.location_id.in_(subtree_ids(filters.within)))
    if filters.device_id:
        conds.append(Fault.device_id == filters.device_id)
    for flag, column in (
        (filters.breached, Fault.breached_at),
        (filters.at_risk, Fault.at_risk_at),
    ):
        if flag is not None:
            conds.append(column.is_not(None) if flag else column.is_(None))
    if filters.recurring is not None:
        conds.append(Fault.recurring.is_(filters.recurring))
    if filters.blocks_rollout is not None:
        conds.append(Fault.blocks_rollout.is_(filters.blocks_rollout))
    if filters.source:
        conds.append(Fault.source == filters.source)
    if filters.assignee:
        conds.append(Fault.assignee == filters.assignee)
    if filters.q:
        places = select(Location.id).where(Location.path.istartswith(filters.q, autoescape=True))
        conds.append(
            or_(
                Fault.reference.icontains(filters.q, autoescape=True),
                Fault.description.icontains(filters.q, autoescape=True),
                Fault.location_id.in_(places),
            )
        )
    return conds


def cursor_key(sort: str, value: Any) -> Any:
    """A cursor's JSON key as the column's type; ValueError if it cannot be."""
    if sort.lstrip("-") in ("reported_at", "due_clear_at"):
        when = datetime.fromisoformat(str(value))
        if when.tzinfo is None:
            raise ValueError("cursor time without a timezone")
        return when
    return str(value)


def list_faults(
    *,
    session: Session,
    scope: Sequence[str] | None,
    filters: FaultFilters,
    sort: str = "-reported_at",
    limit: int = 50,
    after: list[Any] | None = None,
    count_cap: int | None = None,
) -> FaultPage:
    """One page of faults; `after` is the previous page's `last` with its key through cursor_key;
    the total is counted up to `count_cap` (None: exactly)."""
    name, descending = sort.lstrip("-"), sort.startswith("-")
    column = SORT_COLUMNS[name]
    conds = _conditions(filters, scope)
    matching = select(literal(1)).select_from(Fault).where(*conds)
    count, capped = bounded_count(session, matching, count_cap)
    stmt = select(Fault).where(*conds)
    if after is not None:
        pair = tuple_(column, Fault.id)
        bound = tuple_(literal(after[0], column.type), literal(int(after[1]), Fault.id.type))
        stmt = stmt.where(pair < bound if descending else pair > bound)
    order = [column.desc(), Fault.id.desc()] if descending else [column.asc(), Fault.id.asc()]
    faults = list(session.scalars(stmt.order_by(*order).limit(limit + 1)))
    if len(faults) <= limit:
        return FaultPage(faults, count, capped=capped)
    faults = faults[:limit]
    key = getattr(faults[-1], name)
    last = [key.isoformat() if isinstance(key, datetime) else key, faults[-1].id]
    return FaultPage(faults, count, last, capped)


def timeline(*, session: Session, fault: Fault) -> list[FaultEvent]:
    return list(
        session.scalars(
            select(FaultEvent)
            .where(FaultEvent.fault_id == fault.id)
            .order_by(FaultEvent.ts, FaultEvent.id)
        )
    )


def attachments(*, session: Session, fault: Fault) -> list[FaultAttachment]:
    return list(
        session.scalars(
            select(FaultAttachment)
            .where(FaultAttachment.fault_id == fault.id)
            .order_by(FaultAttachment.created_at)
        )
    )


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


def add_attachment(
    *,
    session: Session,
    actor: str,
    fault: Fault,
    key: str,
    content_type: str,
    size: int,
    filename: str,
) -> FaultAttachment:
    """Record a file already put in storage under `key`."""
    attachment = FaultAttachment(
        id=key,
        fault_id=fault.id,
        content_type=content_type,
        size=size,
        filename=filename,
        uploaded_by=actor,
    )
    session.add(attachment)
    record(
        session=session,
        actor=actor,
        action="fault.attachment_added",
        target_type="fault",
        target_id=fault.reference,
        prison_code=fault.prison_code,
        detail={"attachment": key, "content_type": content_type, "size": size},
    )
    session.flush()
    return attachment
