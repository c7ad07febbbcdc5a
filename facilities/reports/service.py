"""Fault reports over a period: open faults, mean time to clear, SLA compliance, recurrences."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.orm import Session

from facilities.faults.models import CATEGORIES, Fault
from facilities.faults.recurring import RECURRING_COUNT, RECURRING_WINDOW, RecurringGroup
from facilities.faults.workflow import OPEN_STATUSES
from fleet.estate.models import Location

MAX_DAYS = 366
DEFAULT_DAYS = 30


class BadPeriod(ValueError):
    """A period that cannot be reported on; `field` names the part to fix."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.message = message


@dataclass(frozen=True)
class Period:
    """Whole days from `first` to `last` inclusive, in UTC."""

    first: date
    last: date

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time.min, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The first moment after the period."""
        return datetime.combine(self.last + timedelta(days=1), time.min, tzinfo=UTC)

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


def parse_period(raw_from: str | None, raw_to: str | None, *, today: date) -> Period:
    """The period asked for, defaulting to the last 30 days; BadPeriod says what is wrong."""
    last = _parse_day("to", raw_to) or today
    first = _parse_day("from", raw_from) or last - timedelta(days=DEFAULT_DAYS - 1)
    if last > today:
        raise BadPeriod("to", f"the period cannot end after today ({today.isoformat()})")
    if first > last:
        raise BadPeriod(
            "from", f"the start ({first.isoformat()}) is after the end ({last.isoformat()})"
        )
    if (last - first).days + 1 > MAX_DAYS:
        raise BadPeriod("from", f"choose a period of at most {MAX_DAYS} days")
    return Period(first, last)


def _parse_day(name: str, raw: str | None) -> date | None:
    text = (raw or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        shown = text[:40]
        raise BadPeriod(name, f"{shown!r} is not a date; write it like 2026-11-01") from None


@dataclass(frozen=True)
class OpenCount:
    prison_code: str
    category: str
    count: int


@dataclass(frozen=True)
class Clearance:
    category: str
    cleared: int
    mean_hours: float | None


@dataclass(frozen=True)
class Compliance:
    """Faults reported in the period whose target has been met or missed (pending excluded)."""

    category: str
    respond_met: int
    respond_missed: int
    clear_met: int
    clear_missed: int

    @property
    def respond_pct(self) -> float | None:
        return _pct(self.respond_met, self.respond_met + self.respond_missed)

    @property
    def clear_pct(self) -> float | None:
        return _pct(self.clear_met, self.clear_met + self.clear_missed)


def _pct(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


@dataclass(frozen=True)
class Report:
    period: Period
    prisons: tuple[str, ...] | None  # None: the whole estate
    generated_at: datetime
    open: list[OpenCount]
    clearance: list[Clearance]
    compliance: list[Compliance]
    recurring: list[RecurringGroup]
    overall: dict[str, Any] = field(default_factory=dict)


def _within(prisons: Sequence[str] | None) -> list[ColumnElement[bool]]:
    return [] if prisons is None else [Fault.prison_code.in_(prisons)]


def _count_if(condition: ColumnElement[bool]) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def open_counts(*, session: Session, prisons: Sequence[str] | None) -> list[OpenCount]:
    """Faults open now, per prison and category."""
    rows = session.execute(
        select(Fault.prison_code, Fault.category, func.count())
        .where(Fault.status.in_(OPEN_STATUSES), *_within(prisons))
        .group_by(Fault.prison_code, Fault.category)
        .order_by(Fault.prison_code, Fault.category)
    )
    return [OpenCount(code, category, int(n)) for code, category, n in rows]


def _seconds_between(session: Session, earlier: Any, later: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", later - earlier)
    return (func.julianday(later) - func.julianday(earlier)) * 86400.0


def clearance(
    *, session: Session, prisons: Sequence[str] | None, period: Period
) -> list[Clearance]:
    """Faults cleared in the period per category, with the mean calendar time from report."""
    took = _seconds_between(session, Fault.reported_at, Fault.cleared_at)
    rows = session.execute(
        select(Fault.category, func.count(), func.avg(took))
        .where(Fault.cleared_at >= period.start, Fault.cleared_at < period.end, *_within(prisons))
        .group_by(Fault.category)
    )
    found = {cat: (int(n), float(avg) / 3600 if avg is not None else None) for cat, n, avg in rows}
    return [Clearance(cat, *found.get(cat, (0, None))) for cat in CATEGORIES if cat in found]


def compliance(
    *, session: Session, prisons: Sequence[str] | None, period: Period, now: datetime
) -> list[Compliance]:
    """Respond and clear targets met or missed by faults reported in the period.

    A fault still inside its target is pending and counts in neither; so is one whose clock is
    paused on hold. Cancelled faults are left out."""
    responded, cleared = Fault.responded_at, Fault.cleared_at
    still_open = and_(Fault.status.in_(OPEN_STATUSES), Fault.paused_since.is_(None))
    rows = session.execute(
        select(
            Fault.category,
            _count_if(and_(responded.is_not(None), responded <= Fault.due_respond_at)),
            _count_if(
                or_(
                    responded > Fault.due_respond_at,
                    and_(responded.is_(None), still_open, Fault.due_respond_at < now),
                )
            ),
            _count_if(and_(cleared.is_not(None), cleared <= Fault.due_clear_at)),
            _count_if(
                or_(
                    cleared > Fault.due_clear_at,
                    and_(cleared.is_(None), still_open, Fault.due_clear_at < now),
                )
            ),
        )
        .where(
            Fault.reported_at >= period.start,
            Fault.reported_at < period.end,
            Fault.status != "cancelled",
            *_within(prisons),
        )
        .group_by(Fault.category)
    )
    found = {row[0]: Compliance(row[0], *(int(v) for v in row[1:])) for row in rows}
    return [found[cat] for cat in CATEGORIES if cat in found]


def recurring_until(
    *, session: Session, prisons: Sequence[str] | None, end: datetime
) -> list[RecurringGroup]:
    """Places with one category of fault 3+ times in the 30 days before `end`, with each fault.

    Unlike the live list, the window is closed at both ends, so a past period reads as it was.
    Three small queries rather than one join: the planner cannot foresee how few places repeat,
    and would read every fault of the window twice."""
    recent = [
        Fault.reported_at >= end - RECURRING_WINDOW,
        Fault.reported_at < end,
        *_within(prisons),
    ]
    repeating = {
        (location_id, category)
        for location_id, category in session.execute(
            select(Fault.location_id, Fault.category)
            .where(*recent)
            .group_by(Fault.location_id, Fault.category)
            .having(func.count() >= RECURRING_COUNT)
        )
    }
    if not repeating:
        return []
    places = sorted({location_id for location_id, _ in repeating})
    found = session.execute(select(Location.id, Location.path).where(Location.id.in_(places)))
    paths: dict[int, str] = dict(found.all())
    rows = session.execute(
        select(Fault.location_id, Fault.category, Fault.prison_code, Fault.reference)
        .where(Fault.location_id.in_(places), *recent)
        .order_by(Fault.reported_at, Fault.id)
    )
    groups: dict[tuple[str, str, str], list[str]] = {}
    for location_id, category, prison_code, ref in rows:
        if (location_id, category) in repeating:
            key = (paths[location_id], category, prison_code)
            groups.setdefault(key, []).append(ref)
    return [
        RecurringGroup(path, prison_code, category, len(refs), refs)
        for (path, category, prison_code), refs in sorted(groups.items())
    ]


def build_report(
    *, session: Session, prisons: Sequence[str] | None, period: Period, now: datetime
) -> Report:
    """Every section of the report for these prisons (None: the whole estate)."""
    scope = tuple(prisons) if prisons is not None else None
    opened = open_counts(session=session, prisons=scope)
    cleared = clearance(session=session, prisons=scope, period=period)
    met = compliance(session=session, prisons=scope, period=period, now=now)
    total_cleared = sum(c.cleared for c in cleared)
    weighted = sum((c.mean_hours or 0) * c.cleared for c in cleared)
    totals = Compliance("all", *(sum(getattr(c, f) for c in met) for f in _COMPLIANCE_FIELDS))
    return Report(
        period=period,
        prisons=scope,
        generated_at=now,
        open=opened,
        clearance=cleared,
        compliance=met,
        # Recurrence is judged over the 30 days up to the end of the period.
        recurring=recurring_until(session=session, prisons=scope, end=min(now, period.end)),
        overall={
            "open": sum(o.count for o in opened),
            "cleared": total_cleared,
            "mean_hours_to_clear": round(weighted / total_cleared, 1) if total_cleared else None,
            "respond_pct": totals.respond_pct,
            "clear_pct": totals.clear_pct,
        },
    )


_COMPLIANCE_FIELDS = ("respond_met", "respond_missed", "clear_met", "clear_missed")
