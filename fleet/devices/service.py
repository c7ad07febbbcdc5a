"""Devices: caseload-scoped list and detail, registration before enrolment, moves, retirement."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    exists,
    false,
    func,
    literal,
    select,
    tuple_,
    union,
    update,
)
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from fleet.api.pagination import bounded_count
from fleet.audit.models import AuditEvent
from fleet.audit.service import for_target, record
from fleet.broker.credentials import CredentialIssuer
from fleet.db import utcnow
from fleet.devices.models import Credential, Device, DeviceEvent, DeviceState
from fleet.enrolment.service import KIND_CODES, new_device_id
from fleet.estate.models import Location, Prison
from fleet.estate.service import Refused, ancestors, location_by_path, subtree_ids

log = logging.getLogger(__name__)

# Sort name -> (column, may be null). Nulls always sort last, whichever the direction.
SORT_COLUMNS: dict[str, tuple[InstrumentedAttribute[Any], bool]] = {
    "id": (Device.id, False),
    "last_seen": (DeviceState.last_seen, True),
    "battery": (DeviceState.battery, True),
    "prison": (Device.prison_code, False),
    "kind": (Device.kind, False),
}
SORTS = tuple(s for name in SORT_COLUMNS for s in (name, "-" + name))

LIST_COLUMNS = (
    Device.id,
    Device.serial,
    Device.kind,
    Device.prison_code,
    Device.lifecycle,
    Location.path.label("location"),
    func.coalesce(DeviceState.online, false()).label("online"),
    func.coalesce(DeviceState.state, "unknown").label("state"),
    DeviceState.last_seen,
    func.coalesce(DeviceState.health, "unknown").label("health"),
    DeviceState.battery,
    DeviceState.agent_version,
    DeviceState.config_version,
)


@dataclass(frozen=True)
class DeviceFilters:
    prisons: tuple[str, ...] = ()
    kind: str | None = None
    lifecycle: str | None = None
    online: bool | None = None
    health: str | None = None
    within: tuple[int, ...] = ()  # location ids: the device is at or beneath each
    q: str | None = None
    drift: bool | None = None  # behind its desired configuration version (or not)


@dataclass(frozen=True)
class DevicePage:
    rows: list[Any]  # result rows with the LIST_COLUMNS labels
    count: int
    last: list[Any] | None = field(default=None)  # cursor values for the next page, if any
    capped: bool = False  # more than `count` match: counting stopped at the cap


def _conditions(filters: DeviceFilters, scope: Sequence[str] | None) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if scope is not None:
        conds.append(Device.prison_code.in_(scope))
    if filters.prisons:
        conds.append(Device.prison_code.in_(filters.prisons))
    if filters.kind:
        conds.append(Device.kind == filters.kind)
    if filters.lifecycle:
        conds.append(Device.lifecycle == filters.lifecycle)
    if filters.online is True:
        conds.append(DeviceState.online.is_(True))
    elif filters.online is False:
        # "Not known to be online" as NOT EXISTS rather than an OR over the outer join: the
        # database then probes the few devices of a prison instead of reading every state row.
        conds.append(~_has_state(_STATE.online.is_(True)))
    if filters.health == "unknown":
        conds.append(~_has_state(_STATE.health != "unknown"))
    elif filters.health:
        conds.append(DeviceState.health == filters.health)
    for location_id in filters.within:
        conds.append(Device.location_id.in_(subtree_ids(location_id)))
    if filters.drift is not None:
        from fleet.automation.desired import drifted_device_ids

        drifted = Device.id.in_(drifted_device_ids())
        conds.append(drifted if filters.drift else ~drifted)
    if filters.q:
        q = filters.q
        # An alias keeps the subquery independent of the list query's own join to location.
        place = aliased(Location)
        # A UNION of three searches, not one OR: each part can use its own trigram index on
        # PostgreSQL, where an OR across columns and tables scans every device.
        matches = union(
            select(Device.id).where(Device.id.icontains(q, autoescape=True)),
            select(Device.id).where(Device.serial.icontains(q, autoescape=True)),
            select(Device.id)
            .join(place, place.id == Device.location_id)
            .where(place.path.icontains(q, autoescape=True)),
        )
        conds.append(Device.id.in_(matches))
    return conds


_STATE = aliased(DeviceState)  # its own name, so it never correlates with the list's join


def _has_state(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """The device has a state row meeting `condition` (written against _STATE)."""
    return exists().where(_STATE.device_id == Device.id, condition)


def _beyond(column: Any, key: Any, last_id: str, descending: bool) -> ColumnElement[bool]:
    """(column, id) strictly after (key, last_id) in the sort direction."""
    if column is Device.id:
        return Device.id < last_id if descending else Device.id > last_id
    # Typed binds, so the key is converted exactly as the stored column value was.
    pair = tuple_(column, Device.id)
    bound = tuple_(literal(key, column.type), literal(last_id, Device.id.type))
    return pair < bound if descending else pair > bound


def _by(column: Any, descending: bool) -> list[Any]:
    if column is Device.id:
        return [Device.id.desc() if descending else Device.id.asc()]
    return [column.desc() if descending else column.asc(), *_by(Device.id, descending)]


def cursor_key(sort: str, value: Any) -> Any:
    """Turn a cursor's JSON key back into the column's type; ValueError if it cannot be."""
    name = sort.lstrip("-")
    if value is None:
        if not SORT_COLUMNS[name][1]:
            raise ValueError("null key for a column that is never null")
        return None
    if name == "last_seen":
        when = datetime.fromisoformat(str(value))
        if when.tzinfo is None:
            raise ValueError("cursor time without a timezone")
        return when
    if name == "battery":
        return float(value)
    return str(value)


def list_devices(
    *,
    session: Session,
    scope: Sequence[str] | None,
    filters: DeviceFilters,
    sort: str = "id",
    limit: int = 50,
    after: list[Any] | None = None,
    count_cap: int | None = None,
) -> DevicePage:
    """One page of devices with state and location path; `after` is a page's `last` with its
    key passed through cursor_key; the total is counted up to `count_cap` (None: exactly)."""
    name, descending = sort.lstrip("-"), sort.startswith("-")
    column, nullable = SORT_COLUMNS[name]
    conds = _conditions(filters, scope)
    matching = (
        select(literal(1))
        .select_from(Device)
        .outerjoin(DeviceState, DeviceState.device_id == Device.id)
        .where(*conds)
    )
    count, capped = bounded_count(session, matching, count_cap)
    wanted = limit + 1
    rows: list[Any] = []
    if not nullable:
        stmt = _page_select(outer=True).where(*conds).order_by(*_by(column, descending))
        if after is not None:
            stmt = stmt.where(_beyond(column, after[0], after[1], descending))
        rows = list(session.execute(stmt.limit(wanted)).all())
    else:
        # Keys that may be null are read in two parts, rows with a key then rows without,
        # so the first part can walk an index on the state table in key order.
        if after is None or after[0] is not None:
            stmt = _page_select(outer=False).where(*conds, column.is_not(None))
            if after is not None:
                stmt = stmt.where(_beyond(column, after[0], after[1], descending))
            stmt = stmt.order_by(*_by(column, descending)).limit(wanted)
            rows = list(session.execute(stmt).all())
        if len(rows) < wanted:
            stmt = _page_select(outer=True).where(*conds, column.is_(None))
            if after is not None and after[0] is None:
                stmt = stmt.where(_beyond(Device.id, None, after[1], descending))
            stmt = stmt.order_by(*_by(Device.id, descending)).limit(wanted - len(rows))
            rows += session.execute(stmt).all()
    if len(rows) <= limit:
        return DevicePage(rows, count, capped=capped)
    rows = rows[:limit]
    last = rows[-1]
    key = getattr(last, {"prison": "prison_code"}.get(name, name))
    if isinstance(key, datetime):
        key = key.isoformat()
    return DevicePage(rows, count, [key, last.id], capped)


def _page_select(*, outer: bool) -> Select[*tuple[Any, ...]]:
    """The list columns; `outer=False` keeps only devices that have a state row."""
    stmt = select(*LIST_COLUMNS).select_from(Device)
    if outer:
        stmt = stmt.outerjoin(DeviceState, DeviceState.device_id == Device.id)
    else:
        stmt = stmt.join(DeviceState, DeviceState.device_id == Device.id)
    return stmt.outerjoin(Location, Location.id == Device.location_id)


@dataclass(frozen=True)
class DeviceDetail:
    device: Device
    prison: Prison
    state: DeviceState | None
    path: list[Location]  # wing down to the device's location
    events: list[DeviceEvent]
    audit: list[AuditEvent]


def device_detail(*, session: Session, device_id: str, recent: int = 20) -> DeviceDetail | None:
    device = session.get(Device, device_id)
    if device is None:
        return None
    prison = session.get(Prison, device.prison_code)
    assert prison is not None
    location = session.get(Location, device.location_id) if device.location_id else None
    events = session.scalars(
        select(DeviceEvent)
        .where(DeviceEvent.device_id == device.id)
        .order_by(DeviceEvent.ts.desc(), DeviceEvent.id.desc())
        .limit(recent)
    )
    return DeviceDetail(
        device=device,
        prison=prison,
        state=session.get(DeviceState, device.id),
        path=ancestors(session=session, location=location) if location else [],
        events=list(events),
        audit=for_target(session=session, target_type="device", target_id=device.id, limit=recent),
    )


def _location_in(session: Session, path: str, prison_codes: Sequence[str] | None) -> Location:
    location = location_by_path(session=session, path=path.strip())
    if location is None or (prison_codes is not None and location.prison_code not in prison_codes):
        raise Refused(
            422, f"no location {path.strip().upper()!r}; see /api/v1/locations", field="location"
        )
    return location


def register_device(
    *,
    session: Session,
    actor: str,
    serial: str,
    kind: str,
    prison_code: str,
    location_path: str | None = None,
    visible: Sequence[str] | None = None,
) -> Device:
    """Record a device before it enrols (lifecycle 'registered'); serials are unique."""
    prison_code = prison_code.strip().upper()
    if session.get(Prison, prison_code) is None:
        raise Refused(
            422, f"unknown prison {prison_code!r}; see /api/v1/prisons", field="prison_code"
        )
    if kind not in KIND_CODES:
        raise Refused(422, f"kind must be one of {', '.join(KIND_CODES)}", field="kind")
    location = None
    if location_path:
        location = _location_in(session, location_path, [prison_code])
    existing = session.scalars(select(Device).where(Device.serial == serial)).first()
    if existing is not None:
        seen = visible is None or existing.prison_code in visible
        raise Refused(
            409,
            f"serial {serial} is already registered as device {existing.id}"
            if seen
            else f"serial {serial} is already registered in another prison",
            field="serial",
            extra={"device_id": existing.id} if seen else {},
        )
    device = Device(
        id=new_device_id(session=session, prison_code=prison_code, kind=kind),
        serial=serial,
        kind=kind,
        prison_code=prison_code,
        location_id=location.id if location else None,
        lifecycle="registered",
    )
    session.add(device)
    session.flush()
    where = location.path if location else None
    session.add(DeviceEvent(device_id=device.id, kind="registered", detail={"serial": serial}))
    record(
        session=session,
        actor=actor,
        action="device.registered",
        target_type="device",
        target_id=device.id,
        prison_code=prison_code,
        detail={"serial": serial, "kind": kind, "location": where},
    )
    return device


def move_device(
    *,
    session: Session,
    actor: str,
    device: Device,
    location_path: str,
    visible: Sequence[str] | None,
    may_change_prison: bool,
) -> bool:
    """Put the device at another location; False when it is already there."""
    if device.lifecycle == "retired":
        raise Refused(409, f"device {device.id} is retired; it cannot be moved")
    target = _location_in(session, location_path, visible)
    if target.id == device.location_id:
        return False
    if target.prison_code != device.prison_code and not may_change_prison:
        raise Refused(
            403,
            f"moving a device to another prison ({device.prison_code} -> "
            f"{target.prison_code}) is for estate administrators only",
        )
    source = session.get(Location, device.location_id) if device.location_id else None
    detail = {
        "from": source.path if source else None,
        "to": target.path,
        "from_prison": device.prison_code,
        "to_prison": target.prison_code,
    }
    device.location_id = target.id
    device.prison_code = target.prison_code
    session.add(DeviceEvent(device_id=device.id, kind="moved", detail=detail))
    record(
        session=session,
        actor=actor,
        action="device.moved",
        target_type="device",
        target_id=device.id,
        prison_code=target.prison_code,
        detail=detail,
    )
    session.flush()
    return True


def retire_device(
    *, session: Session, issuer: CredentialIssuer, actor: str, device: Device, reason: str
) -> bool:
    """Take the device out of service and disable its broker identity; False if already retired."""
    if device.lifecycle == "retired":
        return False
    had_identity = session.scalar(
        select(func.count()).select_from(Credential).where(Credential.device_id == device.id)
    )
    now = utcnow()
    previous = device.lifecycle
    device.lifecycle = "retired"
    device.retired_at = now
    session.execute(
        update(Credential)
        .where(Credential.device_id == device.id, Credential.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    state = session.get(DeviceState, device.id)
    if state is not None:
        state.online = False
        state.state = "offline"
    session.add(DeviceEvent(device_id=device.id, kind="retired", detail={"reason": reason}))
    record(
        session=session,
        actor=actor,
        action="device.retired",
        target_type="device",
        target_id=device.id,
        prison_code=device.prison_code,
        detail={"reason": reason, "previous_lifecycle": previous},
    )
    session.flush()
    if had_identity:
        # Last, so a broker failure rolls the whole retirement back with the transaction.
        issuer.revoke(device.id)
    return True
