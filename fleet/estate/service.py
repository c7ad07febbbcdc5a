"""Prisons and locations: seeding, import and caseload-scoped queries."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, false, func, or_, select
from sqlalchemy.orm import Session, aliased

from fleet.audit.service import record
from fleet.devices.models import Device, DeviceState
from fleet.estate.models import LOCATION_KINDS, Location, Prison


def reference_prisons() -> list[tuple[str, str]]:
    """The estate's prisons (code, name) from the packaged register."""
    text = files("fleet.estate").joinpath("data/prisons.csv").read_text(encoding="utf-8")
    return [(row["code"].strip(), row["name"].strip()) for row in csv.DictReader(text.splitlines())]


def seed_prisons(*, session: Session) -> int:
    """Insert any prison of the register that is missing; returns how many were added."""
    existing = set(session.scalars(select(Prison.code)))
    added = 0
    for code, name in reference_prisons():
        if code not in existing:
            session.add(Prison(code=code, name=name))
            added += 1
    session.flush()
    return added


def list_prisons(*, session: Session, caseload: Sequence[str] | None) -> list[Prison]:
    stmt = select(Prison).order_by(Prison.name)
    if caseload:
        stmt = stmt.where(Prison.code.in_(caseload))
    return list(session.scalars(stmt))


def get_prison(*, session: Session, code: str) -> Prison | None:
    return session.get(Prison, code.upper())


def location_by_path(*, session: Session, path: str) -> Location | None:
    return session.scalars(select(Location).where(Location.path == path.upper())).first()


def ancestors(*, session: Session, location: Location) -> list[Location]:
    """The chain from the wing down to this location (inclusive)."""
    chain = [location]
    while chain[0].parent_id is not None:
        parent = session.get(Location, chain[0].parent_id)
        if parent is None:
            break
        chain.insert(0, parent)
    return chain


def generate_locations(
    *,
    session: Session,
    prison_code: str,
    wings: int,
    landings: int,
    cells: int,
    rooms: Iterable[str] = (),
) -> int:
    """Build a regular wing > landing > cell tree (used by the demo and simulator)."""
    created = 0
    existing = set(
        session.scalars(select(Location.path).where(Location.prison_code == prison_code))
    )

    def add(path: str, kind: str, name: str, parent: Location | None, cap: int = 0) -> Location:
        nonlocal created
        if path in existing:
            found = location_by_path(session=session, path=path)
            assert found is not None
            return found
        loc = Location(
            prison_code=prison_code,
            path=path,
            kind=kind,
            name=name,
            parent_id=parent.id if parent else None,
            capacity=cap,
        )
        session.add(loc)
        session.flush()
        created += 1
        return loc

    for w in range(1, wings + 1):
        wing = add(f"{prison_code}-{w}", "wing", f"Wing {w}", None)
        for lnd in range(1, landings + 1):
            landing = add(f"{prison_code}-{w}-{lnd}", "landing", f"Landing {lnd}", wing)
            for c in range(1, cells + 1):
                add(f"{prison_code}-{w}-{lnd}-{c:03d}", "cell", f"Cell {c:03d}", landing, 1)
    for room in rooms:
        slug = "".join(ch for ch in room.upper() if ch.isalnum())[:20]
        add(f"{prison_code}-{slug}", "room", room, None)
    return created


class Refused(Exception):
    """A request that cannot be honoured; `status` is the HTTP answer, `field` what to fix."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        field: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.extra = extra or {}


# Which kind of parent each kind of location may hang from (None: the prison itself).
ALLOWED_PARENTS: dict[str, tuple[str | None, ...]] = {
    "wing": (None,),
    "landing": ("wing",),
    "cell": ("landing",),
    "room": (None, "wing"),
}
_PLACEMENT_RULE = {
    "wing": "a wing belongs directly to the prison, so it has no parent",
    "landing": "a landing must be under a wing",
    "cell": "a cell must be under a landing",
    "room": "a room must be under the prison itself or under a wing",
}
PATH_RE = re.compile(r"^[A-Z0-9]+(?:-[A-Z0-9]+)+$")
PATH_MAX = 64


def prison_of_path(path: str) -> str:
    """The prison code a location path starts with (MDI-1-1-001 -> MDI)."""
    return path.split("-", 1)[0]


def derived_parent_path(path: str) -> str | None:
    """The parent implied by a path (MDI-1-1-001 -> MDI-1-1); None when it is the prison."""
    head = path.rpartition("-")[0]
    return head if "-" in head else None


def path_problem(path: str, prison_code: str, parent_path: str | None) -> str | None:
    """Why a location path is not acceptable, or None when it is."""
    if len(path) > PATH_MAX:
        return f"path {path!r} is longer than {PATH_MAX} characters"
    if not PATH_RE.match(path):
        return (
            f"path {path!r} must be the prison code then '-'-separated parts of letters "
            "and digits, like MDI-1-1-001"
        )
    if prison_of_path(path) != prison_code:
        return f"path {path!r} must start with its prison code, like {prison_code}-1"
    if parent_path is not None and not path.startswith(parent_path + "-"):
        return f"path {path!r} must start with its parent's path {parent_path}-"
    return None


def placement_problem(kind: str, parent_path: str | None, parent_kind: str | None) -> str | None:
    """Why a location of `kind` cannot hang from this parent, or None when it can."""
    if parent_kind in ALLOWED_PARENTS[kind]:
        return None
    found = "the prison itself" if parent_path is None else f"{parent_path}, a {parent_kind}"
    return f"{_PLACEMENT_RULE[kind]}; its parent is {found}"


def create_location(
    *,
    session: Session,
    actor: str,
    prison_code: str,
    path: str,
    kind: str,
    name: str,
    parent_path: str | None = None,
    capacity: int | None = None,
) -> Location:
    """Add one location under an existing parent, checking the wing > landing > cell rules."""
    prison_code, path = prison_code.strip().upper(), path.strip().upper()
    if session.get(Prison, prison_code) is None:
        raise Refused(422, f"unknown prison {prison_code!r}", field="prison_code")
    if kind not in ALLOWED_PARENTS:
        raise Refused(422, f"kind must be one of {', '.join(LOCATION_KINDS)}", field="kind")
    if parent_path is not None:
        parent_path = parent_path.strip().upper() or None
    else:
        parent_path = derived_parent_path(path) if kind != "wing" else None
    problem = path_problem(path, prison_code, parent_path)
    if problem:
        raise Refused(422, problem, field="path")
    if location_by_path(session=session, path=path) is not None:
        raise Refused(409, f"location {path} already exists", field="path")
    parent = None
    if parent_path is not None:
        parent = location_by_path(session=session, path=parent_path)
        if parent is None or parent.prison_code != prison_code:
            raise Refused(
                422,
                f"parent {parent_path} does not exist in {prison_code}; create it first",
                field="parent",
            )
    problem = placement_problem(kind, parent_path, parent.kind if parent else None)
    if problem:
        raise Refused(422, problem, field="kind")
    location = Location(
        prison_code=prison_code,
        path=path,
        kind=kind,
        name=name.strip(),
        parent_id=parent.id if parent else None,
        capacity=capacity if capacity is not None else default_capacity(kind),
    )
    session.add(location)
    session.flush()
    record(
        session=session,
        actor=actor,
        action="location.created",
        target_type="location",
        target_id=path,
        prison_code=prison_code,
        detail={"kind": kind, "name": location.name, "parent": parent_path},
    )
    return location


def default_capacity(kind: str) -> int:
    return 1 if kind == "cell" else 0


@dataclass(frozen=True)
class PrisonCounts:
    locations: int = 0
    cells: int = 0
    devices_enrolled: int = 0
    devices_online: int = 0
    devices_healthy: int = 0


def _as_int(value: Any) -> int:
    return int(value or 0)


def prison_counts(*, session: Session, codes: Sequence[str]) -> dict[str, PrisonCounts]:
    """Location and enrolled-device counts per prison, in two grouped queries."""
    if not codes:
        return {}
    places = session.execute(
        select(
            Location.prison_code,
            func.count(),
            func.sum(case((Location.kind == "cell", 1), else_=0)),
        )
        .where(Location.prison_code.in_(codes))
        .group_by(Location.prison_code)
    ).all()
    online = func.coalesce(DeviceState.online, false())
    devices = session.execute(
        select(
            Device.prison_code,
            func.count(),
            func.sum(case((online, 1), else_=0)),
            func.sum(case((and_(online, DeviceState.health == "ok"), 1), else_=0)),
        )
        .outerjoin(DeviceState, DeviceState.device_id == Device.id)
        .where(Device.prison_code.in_(codes), Device.lifecycle == "enrolled")
        .group_by(Device.prison_code)
    ).all()
    found: dict[str, dict[str, int]] = {code: {} for code in codes}
    for code, total, cells in places:
        found[code].update(locations=_as_int(total), cells=_as_int(cells))
    for code, enrolled, up, healthy in devices:
        found[code].update(
            devices_enrolled=_as_int(enrolled),
            devices_online=_as_int(up),
            devices_healthy=_as_int(healthy),
        )
    return {code: PrisonCounts(**values) for code, values in found.items()}


@dataclass(frozen=True)
class WingSummary:
    path: str
    name: str
    landings: int
    cells: int
    devices_enrolled: int
    devices_online: int


def wing_summaries(*, session: Session, prison_code: str) -> list[WingSummary]:
    """Per wing of a prison: landings, cells, and enrolled/online devices anywhere beneath it."""
    rows = session.execute(
        select(Location.id, Location.parent_id, Location.kind, Location.path, Location.name).where(
            Location.prison_code == prison_code
        )
    ).all()
    parent_of = {row.id: row.parent_id for row in rows}
    wings = {row.id: row for row in rows if row.kind == "wing"}

    def wing_of(location_id: int | None) -> int | None:
        seen = 0
        while location_id is not None and location_id not in wings and seen < 10:
            location_id = parent_of.get(location_id)
            seen += 1
        return location_id if location_id in wings else None

    tally: dict[int, dict[str, int]] = {
        wid: dict.fromkeys(("landings", "cells", "devices_enrolled", "devices_online"), 0)
        for wid in wings
    }
    for row in rows:
        wid = wing_of(row.parent_id)
        if wid is not None and row.kind in ("landing", "cell"):
            tally[wid][row.kind + "s"] += 1
    online = func.coalesce(DeviceState.online, false())
    per_location = session.execute(
        select(Device.location_id, func.count(), func.sum(case((online, 1), else_=0)))
        .outerjoin(DeviceState, DeviceState.device_id == Device.id)
        .where(Device.prison_code == prison_code, Device.lifecycle == "enrolled")
        .group_by(Device.location_id)
    ).all()
    for location_id, enrolled, up in per_location:
        wid = wing_of(location_id)
        if wid is not None:
            tally[wid]["devices_enrolled"] += _as_int(enrolled)
            tally[wid]["devices_online"] += _as_int(up)
    return sorted(
        (WingSummary(wings[wid].path, wings[wid].name, **counts) for wid, counts in tally.items()),
        key=lambda w: w.path,
    )


def subtree_ids(location_id: int) -> Select[tuple[int]]:
    """A query for the ids of a location and everything beneath it."""
    name = f"subtree_{location_id}"  # unique, so two subtrees can filter one query
    tree = select(Location.id).where(Location.id == location_id).cte(name, recursive=True)
    tree = tree.union_all(select(Location.id).join(tree, Location.parent_id == tree.c.id))
    return select(tree.c.id)


@dataclass(frozen=True)
class LocationPage:
    rows: list[tuple[Location, str | None]]  # each location with its parent's path
    count: int
    next_after: str | None


def list_locations(
    *,
    session: Session,
    caseload: Sequence[str] | None,
    prison_codes: Sequence[str] = (),
    kind: str | None = None,
    parent_id: int | None = None,
    q: str | None = None,
    after: str | None = None,
    limit: int = 100,
) -> LocationPage:
    """Locations ordered by path, filtered, one keyset page after the path `after`."""
    parent = aliased(Location)
    conditions: list[ColumnElement[bool]] = []
    if caseload is not None:
        conditions.append(Location.prison_code.in_(caseload))
    if prison_codes:
        conditions.append(Location.prison_code.in_(prison_codes))
    if kind:
        conditions.append(Location.kind == kind)
    if parent_id is not None:
        conditions.append(Location.parent_id == parent_id)
    if q:
        conditions.append(
            or_(
                Location.path.icontains(q, autoescape=True),
                Location.name.icontains(q, autoescape=True),
            )
        )
    count = session.scalar(select(func.count()).select_from(Location).where(*conditions)) or 0
    stmt = (
        select(Location, parent.path)
        .outerjoin(parent, parent.id == Location.parent_id)
        .where(*conditions)
        .order_by(Location.path)
        .limit(limit + 1)
    )
    if after is not None:
        stmt = stmt.where(Location.path > after)
    rows: list[tuple[Location, str | None]] = [
        (loc, parent_path) for loc, parent_path in session.execute(stmt).all()
    ]
    more = len(rows) > limit
    rows = rows[:limit]
    return LocationPage(rows, count, rows[-1][0].path if more and rows else None)


def children(*, session: Session, location: Location) -> list[Location]:
    stmt = select(Location).where(Location.parent_id == location.id).order_by(Location.path)
    return list(session.scalars(stmt))


def devices_beneath(*, session: Session, location: Location) -> int:
    """How many devices (any lifecycle but retired) sit at this location or beneath it."""
    stmt = select(func.count()).where(
        Device.location_id.in_(subtree_ids(location.id)), Device.lifecycle != "retired"
    )
    return session.scalar(stmt) or 0
