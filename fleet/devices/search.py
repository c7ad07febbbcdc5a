"""Finding devices: filters, free-text search, keyset pages and a count bounded by a cap."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    CTE,
    ColumnElement,
    Select,
    String,
    any_,
    cast,
    exists,
    false,
    func,
    literal,
    select,
    true,
    tuple_,
    union,
    union_all,
)
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from fleet.devices.models import Device, DeviceState
from fleet.estate.models import Location
from fleet.estate.service import subtree_ids

# Sort name -> (column, may be null). Nulls always sort last, whichever the direction.
SORT_COLUMNS: dict[str, tuple[InstrumentedAttribute[Any], bool]] = {
    "id": (Device.id, False),
    "last_seen": (DeviceState.last_seen, True),
    "battery": (DeviceState.battery, True),
    "prison": (Device.prison_code, False),
    "kind": (Device.kind, False),
}
SORTS = tuple(s for name in SORT_COLUMNS for s in (name, "-" + name))
SORT_LABELS = {"prison": "prison_code"}  # sort names that differ from their row attribute

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


@dataclass(frozen=True)
class _Order:
    name: str
    column: Any
    nullable: bool
    descending: bool

    @classmethod
    def of(cls, sort: str) -> _Order:
        name = sort.lstrip("-")
        column, nullable = SORT_COLUMNS[name]
        return cls(name, column, nullable, sort.startswith("-"))


def _search_matches(q: str) -> CTE:
    """Ids of devices whose id, serial or location path holds `q`, found once per statement."""
    # An alias keeps the search independent of the list query's own join to location.
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
    # Materialised, so the count and every part of the page read the same few ids rather
    # than each repeating the trigram lookups.
    return matches.cte("search_matches").prefix_with("MATERIALIZED")


def _found(matches: CTE, postgresql: bool) -> ColumnElement[bool]:
    """The device is one the search found."""
    if not postgresql:
        return Device.id.in_(select(matches.c.id))
    # The device key probed with the found ids as one array: the planner knows nothing of
    # how many distinct ids a CTE holds, and with IN or a join it may pick plans that read
    # every device, or compare every found id with every device.
    found = cast(select(func.array_agg(matches.c.id)).scalar_subquery(), ARRAY(String))
    return Device.id == any_(found)


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


def _page_select(*, outer: bool) -> Select[*tuple[Any, ...]]:
    """The list columns; `outer=False` keeps only devices that have a state row."""
    stmt = select(*LIST_COLUMNS).select_from(Device)
    if outer:
        stmt = stmt.outerjoin(DeviceState, DeviceState.device_id == Device.id)
    else:
        stmt = stmt.join(DeviceState, DeviceState.device_id == Device.id)
    return stmt.outerjoin(Location, Location.id == Device.location_id)


def _parts(
    conds: list[ColumnElement[bool]], order: _Order, after: list[Any] | None, wanted: int
) -> list[Select[Any]]:
    """The page's statements, read in turn until `wanted` rows are found."""
    column, descending = order.column, order.descending
    if not order.nullable:
        stmt = _page_select(outer=True).where(*conds)
        if after is not None:
            stmt = stmt.where(_beyond(column, after[0], after[1], descending))
        return [stmt.order_by(*_by(column, descending)).limit(wanted)]
    # Keys that may be null are read in two parts, rows with a key then rows without,
    # so the first part can walk an index on the state table in key order.
    parts: list[Select[Any]] = []
    if after is None or after[0] is not None:
        keyed = _page_select(outer=False).where(*conds, column.is_not(None))
        if after is not None:
            keyed = keyed.where(_beyond(column, after[0], after[1], descending))
        parts.append(keyed.order_by(*_by(column, descending)).limit(wanted))
    unkeyed = _page_select(outer=True).where(*conds, column.is_(None))
    if after is not None and after[0] is None:
        unkeyed = unkeyed.where(_beyond(Device.id, None, after[1], descending))
    parts.append(unkeyed.order_by(*_by(Device.id, descending)).limit(wanted))
    return parts


def _matching(conds: list[ColumnElement[bool]]) -> Select[Any]:
    return (
        select(literal(1))
        .select_from(Device)
        .outerjoin(DeviceState, DeviceState.device_id == Device.id)
        .where(*conds)
    )


def _searched(
    session: Session, parts: list[Select[Any]], order: _Order, counting: Select[Any] | None
) -> tuple[list[Any], int]:
    """A search's page rows, and the rows `counting` reads, in one statement: one lookup."""
    # Each part as a subquery: SQLite takes no ORDER BY or LIMIT on a bare UNION member.
    tagged = [p.add_columns(literal(n).label("part")).subquery() for n, p in enumerate(parts)]
    page = union_all(*(select(*t.c) for t in tagged))
    rows = page.subquery("page")
    key = rows.c[SORT_LABELS.get(order.name, order.name)]
    keys = [rows.c.part, key.desc() if order.descending else key.asc()]
    keys.append(rows.c.id.desc() if order.descending else rows.c.id.asc())
    columns = [c for c in rows.c if c.name != "part"]
    if counting is None:
        return list(session.execute(select(*columns).order_by(*keys)).all()), 0
    total = select(func.count().label("matched")).select_from(counting.subquery()).subquery()
    # Joined from the count outwards, so an empty page still brings its count back.
    stmt = (
        select(total.c.matched, *columns).select_from(total.outerjoin(rows, true())).order_by(*keys)
    )
    found = session.execute(stmt).all()
    return [r for r in found if r.id is not None], found[0].matched


def _read(session: Session, parts: list[Select[Any]], wanted: int) -> list[Any]:
    """The parts' rows in turn, stopping once `wanted` are found."""
    rows: list[Any] = []
    for part in parts:
        if len(rows) >= wanted:
            break
        rows += session.execute(part.limit(wanted - len(rows))).all()
    return rows


def _find(
    session: Session,
    scope: Sequence[str] | None,
    filters: DeviceFilters,
    order: _Order,
    limit: int,
    after: list[Any] | None,
    count_cap: int | None,
    counted: bool,
) -> tuple[list[Any], list[Any] | None, int, bool]:
    """Rows of the page, the next page's `last`, and the count with whether it was capped."""
    searching = bool(filters.q) and "\x00" not in (filters.q or "")
    matches = _search_matches(filters.q or "") if searching else None
    conds = _conditions(filters, scope)
    if filters.q and not searching:
        # No stored id, serial or path holds a NUL character, so nothing can match.
        conds.append(false())
    if matches is not None:
        conds.append(_found(matches, session.get_bind().dialect.name == "postgresql"))
    parts = _parts(conds, order, after, limit + 1)
    counting = None
    if counted:
        counting = _matching(conds).limit(None if count_cap is None else count_cap + 1)
    if matches is not None:
        rows, count = _searched(session, parts, order, counting)
    else:
        count = 0
        if counting is not None:
            count = session.scalar(select(func.count()).select_from(counting.subquery())) or 0
        rows = _read(session, parts, limit + 1)
    capped = count_cap is not None and count > count_cap
    if count_cap is not None and capped:
        count = count_cap
    if len(rows) <= limit:
        return rows, None, count, capped
    rows = rows[:limit]
    key = getattr(rows[-1], SORT_LABELS.get(order.name, order.name))
    if isinstance(key, datetime):
        key = key.isoformat()
    return rows, [key, rows[-1].id], count, capped


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
    rows, last, count, capped = _find(
        session, scope, filters, _Order.of(sort), limit, after, count_cap, counted=True
    )
    return DevicePage(rows, count, last, capped)


def devices_after(
    *,
    session: Session,
    scope: Sequence[str] | None,
    filters: DeviceFilters,
    sort: str = "id",
    limit: int = 50,
    after: list[Any] | None = None,
) -> tuple[list[Any], list[Any] | None]:
    """A page of list_devices without its count, for reading every match in turn."""
    rows, last, _, _ = _find(
        session, scope, filters, _Order.of(sort), limit, after, None, counted=False
    )
    return rows, last
