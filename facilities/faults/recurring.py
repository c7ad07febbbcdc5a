"""Faults that keep coming back: one category at one place three or more times in 30 days."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from facilities.faults.models import Fault
from fleet.db import utcnow
from fleet.estate.models import Location

RECURRING_WINDOW = timedelta(days=30)
RECURRING_COUNT = 3


def flag_recurring(*, session: Session, fault: Fault, now: datetime) -> None:
    """Three or more faults of one category at one place within the window are all flagged."""
    same = list(
        session.scalars(
            select(Fault).where(
                Fault.location_id == fault.location_id,
                Fault.category == fault.category,
                Fault.reported_at >= now - RECURRING_WINDOW,
            )
        )
    )
    if len(same) >= RECURRING_COUNT:
        for other in same:
            other.recurring = True


@dataclass(frozen=True)
class RecurringGroup:
    location: str
    prison_code: str
    category: str
    count: int
    references: list[str]


def recurring_groups(
    *, session: Session, scope: Sequence[str] | None, now: datetime | None = None
) -> list[RecurringGroup]:
    """Places where one category of fault was reported three or more times in the window."""
    since = (now or utcnow()) - RECURRING_WINDOW
    recent = [Fault.reported_at >= since]
    if scope is not None:
        recent.append(Fault.prison_code.in_(scope))
    # Grouped in the database first, so only the repeating places' faults are read.
    repeating = (
        select(Fault.location_id, Fault.category)
        .where(*recent)
        .group_by(Fault.location_id, Fault.category)
        .having(func.count() >= RECURRING_COUNT)
        .subquery()
    )
    stmt = (
        select(Fault.reference, Fault.category, Fault.prison_code, Location.path)
        .join(
            repeating,
            (repeating.c.location_id == Fault.location_id)
            & (repeating.c.category == Fault.category),
        )
        .join(Location, Location.id == Fault.location_id)
        .where(*recent)
        .order_by(Location.path, Fault.category, Fault.reported_at, Fault.id)
    )
    groups: dict[tuple[str, str], list[str]] = {}
    prisons: dict[str, str] = {}
    for ref, category, prison_code, path in session.execute(stmt):
        groups.setdefault((path, category), []).append(ref)
        prisons[path] = prison_code
    return [
        RecurringGroup(path, prisons[path], category, len(refs), refs)
        for (path, category), refs in groups.items()
    ]
