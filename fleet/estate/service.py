"""Prisons and locations: seeding, import and caseload-scoped queries."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from importlib.resources import files

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet.estate.models import Location, Prison


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
