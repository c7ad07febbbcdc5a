"""Quiet windows: when a prison's scheduled or ad hoc regime silences some rules."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet.alerts.models import QuietWindow

# Every prison in the estate keeps UK time; schedules are written in local wall-clock time.
PRISON_TZ = ZoneInfo("Europe/London")
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _clock(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def scheduled_span(window: QuietWindow, start_day: date) -> tuple[datetime, datetime]:
    """The span of a scheduled window starting on `start_day`, crossing midnight if needed."""
    start_clock, end_clock = (
        _clock(window.start_time or "00:00"),
        _clock(window.end_time or "00:00"),
    )
    end_day = start_day if end_clock > start_clock else start_day + timedelta(days=1)
    return (
        datetime.combine(start_day, start_clock, PRISON_TZ),
        datetime.combine(end_day, end_clock, PRISON_TZ),
    )


def active_until(window: QuietWindow, now: datetime) -> tuple[bool, datetime | None]:
    """Whether the window is silencing at `now`, and until when (None: until someone ends it)."""
    if window.archived_at is not None and window.archived_at <= now:
        return False, None
    if window.kind == "ad_hoc":
        started = window.starts_at is not None and window.starts_at <= now
        running = window.ends_at is None or now < window.ends_at
        return started and running, window.ends_at
    today = now.astimezone(PRISON_TZ).date()
    for start_day in (today, today - timedelta(days=1)):
        if window.days and start_day.weekday() not in window.days:
            continue
        start, end = scheduled_span(window, start_day)
        if start <= now < end:
            return True, end
    return False, None


def label(window: QuietWindow, until: datetime | None, now: datetime) -> str:
    """How the queue says it: "Quiet: night power-down until 06:30"."""
    if until is None:
        return f"Quiet: {window.reason} until ended"
    local = until.astimezone(PRISON_TZ)
    when = local.strftime("%H:%M")
    if local.date() != now.astimezone(PRISON_TZ).date():
        when += local.strftime(" on %a %d %b")
    return f"Quiet: {window.reason} until {when}"


def schedule_text(window: QuietWindow) -> str:
    if window.kind == "ad_hoc":
        start = window.starts_at.astimezone(PRISON_TZ) if window.starts_at else None
        end = window.ends_at.astimezone(PRISON_TZ) if window.ends_at else None
        begin = start.strftime("%d %b %H:%M") if start else "?"
        return f"{begin} to {end.strftime('%d %b %H:%M') if end else 'when ended'}"
    days = ", ".join(DAY_NAMES[d] for d in window.days) if window.days else "Every day"
    return f"{days}, {window.start_time} to {window.end_time} (UK time)"


@dataclass(frozen=True)
class ActiveWindow:
    window: QuietWindow
    until: datetime | None
    label: str

    def silences(self, prison_code: str, rule_kind: str) -> bool:
        kinds = self.window.rule_kinds
        return self.window.prison_code == prison_code and (not kinds or rule_kind in kinds)


def live_windows(
    *, session: Session, now: datetime, prisons: Iterable[str] | None = None
) -> list[QuietWindow]:
    """Windows not archived, optionally only for some prisons."""
    stmt = select(QuietWindow).where(
        (QuietWindow.archived_at.is_(None)) | (QuietWindow.archived_at > now)
    )
    if prisons is not None:
        stmt = stmt.where(QuietWindow.prison_code.in_(list(prisons)))
    return list(session.scalars(stmt.order_by(QuietWindow.prison_code, QuietWindow.id)))


def active_windows(
    *, session: Session, now: datetime, prisons: Iterable[str] | None = None
) -> list[ActiveWindow]:
    active = []
    for window in live_windows(session=session, now=now, prisons=prisons):
        on, until = active_until(window, now)
        if on:
            active.append(ActiveWindow(window, until, label(window, until, now)))
    return active


def silenced_pairs(
    windows: Iterable[ActiveWindow], rule_kinds: Iterable[str]
) -> set[tuple[str, str]]:
    """(prison, rule kind) pairs silenced right now."""
    kinds = list(rule_kinds)
    pairs: set[tuple[str, str]] = set()
    for active in windows:
        for kind in kinds:
            if active.silences(active.window.prison_code, kind):
                pairs.add((active.window.prison_code, kind))
    return pairs
