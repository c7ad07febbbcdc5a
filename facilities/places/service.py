"""Places with their open faults: search by code or name, the tree one level at a time."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from facilities.faults.models import Fault
from facilities.faults.workflow import OPEN_STATUSES
from fleet.estate.models import Location, Prison
from fleet.estate.service import list_locations, subtree_ids

SEARCH_LIMIT = 50
# Letters, digits and dashes only: what a location code can hold. Anything else is a name.
CODE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")


@dataclass(frozen=True)
class PlaceRow:
    """One place as lists show it: where it is and how many faults are open at or beneath it."""

    path: str
    prison_code: str
    kind: str
    name: str
    open_faults: int
    parent: str | None = None


@dataclass(frozen=True)
class PrisonRow:
    code: str
    name: str
    places: int
    open_faults: int


def open_by_path(*, session: Session, prison_codes: Iterable[str]) -> dict[str, int]:
    """Open faults per location code, in the given prisons."""
    codes = sorted(set(prison_codes))
    if not codes:
        return {}
    rows = session.execute(
        select(Location.path, func.count())
        .select_from(Fault)
        .join(Location, Location.id == Fault.location_id)
        .where(Fault.prison_code.in_(codes), Fault.status.in_(OPEN_STATUSES))
        .group_by(Location.path)
    )
    return {path: int(n) for path, n in rows}


def rolled_up(counts: dict[str, int], path: str) -> int:
    """Open faults at `path` or beneath it: a child's code always extends its parent's."""
    prefix = path + "-"
    return sum(n for p, n in counts.items() if p == path or p.startswith(prefix))


def prisons_with_places(*, session: Session, scope: Sequence[str] | None) -> list[PrisonRow]:
    """Prisons in scope that have a location tree, with their open faults."""
    places = select(Location.prison_code, func.count().label("n")).group_by(Location.prison_code)
    if scope is not None:
        places = places.where(Location.prison_code.in_(scope))
    counted = places.subquery()
    rows = session.execute(
        select(Prison.code, Prison.name, counted.c.n)
        .join(counted, counted.c.prison_code == Prison.code)
        .order_by(Prison.name)
    ).all()
    open_stmt = (
        select(Fault.prison_code, func.count())
        .where(Fault.status.in_(OPEN_STATUSES))
        .group_by(Fault.prison_code)
    )
    if scope is not None:
        open_stmt = open_stmt.where(Fault.prison_code.in_(scope))
    open_faults = {code: int(n) for code, n in session.execute(open_stmt)}
    return [PrisonRow(code, name, int(n), open_faults.get(code, 0)) for code, name, n in rows]


def children_of(*, session: Session, prison_code: str, parent_id: int | None) -> list[PlaceRow]:
    """The places one level below a prison (parent_id None) or a location, with open faults."""
    stmt = select(Location).where(Location.prison_code == prison_code)
    stmt = stmt.where(
        Location.parent_id.is_(None) if parent_id is None else Location.parent_id == parent_id
    )
    rows = list(session.scalars(stmt.order_by(Location.path)))
    counts = open_by_path(session=session, prison_codes=[prison_code])
    return [
        PlaceRow(loc.path, loc.prison_code, loc.kind, loc.name, rolled_up(counts, loc.path))
        for loc in rows
    ]


def looks_like_code(text: str) -> bool:
    """MDI-1-1 or 1-1-001, not a name such as "E-wing" or "Healthcare"."""
    upper = text.upper()
    return "-" in upper and any(ch.isdigit() for ch in upper) and set(upper) <= CODE_CHARS


@dataclass(frozen=True)
class SearchResult:
    rows: list[PlaceRow]
    count: int


def search(
    *, session: Session, scope: Sequence[str] | None, q: str, limit: int = SEARCH_LIMIT
) -> SearchResult:
    """Places whose code or name holds `q`, in code order, so MDI-1-1 lists before its cells."""
    text = q.strip()
    if looks_like_code(text):
        found, count = _code_matches(session=session, scope=scope, code=text.upper(), limit=limit)
    else:
        page = list_locations(session=session, caseload=scope, q=text, limit=limit)
        found, count = page.rows, page.count
    counts = open_by_path(session=session, prison_codes={loc.prison_code for loc, _ in found})
    rows = [
        PlaceRow(loc.path, loc.prison_code, loc.kind, loc.name, rolled_up(counts, loc.path), parent)
        for loc, parent in found
    ]
    # An exact code goes first, whatever sorts before it.
    rows.sort(key=lambda r: r.path != text.upper())
    return SearchResult(rows, count)


def _code_matches(
    *, session: Session, scope: Sequence[str] | None, code: str, limit: int
) -> tuple[list[tuple[Location, str | None]], int]:
    """Places whose code holds `code`, on the code's trigram index alone.

    Matching names as well would need a scan of every location, for names that are words."""
    parent = aliased(Location)
    conditions = [Location.path.icontains(code, autoescape=True)]
    if scope is not None:
        conditions.append(Location.prison_code.in_(scope))
    count = session.scalar(select(func.count()).select_from(Location).where(*conditions)) or 0
    rows = session.execute(
        select(Location, parent.path)
        .outerjoin(parent, parent.id == Location.parent_id)
        .where(*conditions)
        .order_by(Location.path)
        .limit(limit)
    ).all()
    return [(loc, parent_path) for loc, parent_path in rows], count


@dataclass(frozen=True)
class History:
    faults: list[tuple[Fault, str]]  # newest first, each with its location code
    count: int


def fault_history(*, session: Session, location: Location, limit: int) -> History:
    """The latest faults at a place or beneath it, and how many there have been in all."""
    here = Fault.location_id.in_(subtree_ids(location.id))
    count = session.scalar(select(func.count()).select_from(Fault).where(here)) or 0
    rows = session.execute(
        select(Fault, Location.path)
        .join(Location, Location.id == Fault.location_id)
        .where(here)
        .order_by(Fault.reported_at.desc(), Fault.id.desc())
        .limit(limit)
    ).all()
    return History([(fault, path) for fault, path in rows], count)
