"""Progress measured from the devices: counts now, daily online share, gate, forecast, RAG."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet.rollout.models import PlanSnapshot, PrisonPlan, Programme

# A forecast later than planned by more than this many days is red; any slip is amber.
RED_SLIP_DAYS = 14
# With no enrolment trend yet, a go-live nearer than this is red rather than amber.
UNSTARTED_RED_DAYS = 28
TREND_WINDOW_DAYS = 28
# A trend so slow it needs longer than this is reported as reaching expected at this horizon.
FORECAST_HORIZON_DAYS = 3650


class DaySnapshot(NamedTuple):
    """One plan's figures on one day, as the daily job recorded them."""

    day: date
    expected: int
    enrolled: int
    online: int
    healthy: int


@dataclass(frozen=True)
class DayShare:
    day: date
    share_pct: float | None  # None: no snapshot that day


@dataclass(frozen=True)
class Gate:
    live: bool
    qualifying_days: int  # consecutive days at or above the gate, ending at the latest day
    required_days: int
    online_pct: float


@dataclass
class Rag:
    status: str  # green | amber | red
    reasons: list[str] = field(default_factory=list)


def expected_devices(plan: PrisonPlan, programme: Programme, cells: int) -> tuple[int, str]:
    """The entered figure, or cells x devices per cell; with where it came from."""
    if plan.expected_devices is not None:
        return plan.expected_devices, "entered"
    return cells * programme.devices_per_cell, "cells"


def share_pct(online: int, expected: int) -> float:
    return round(100.0 * online / expected, 1) if expected > 0 else 0.0


def snapshots_for(
    *, session: Session, plan_ids: Sequence[int], since: date, until: date
) -> dict[int, list[DaySnapshot]]:
    """Snapshots per plan between two days inclusive, oldest first (plain tuples: many rows)."""
    found: dict[int, list[DaySnapshot]] = {pid: [] for pid in plan_ids}
    if not plan_ids:
        return found
    rows = session.execute(
        select(
            PlanSnapshot.plan_id,
            PlanSnapshot.day,
            PlanSnapshot.expected,
            PlanSnapshot.enrolled,
            PlanSnapshot.online,
            PlanSnapshot.healthy,
        )
        .where(
            PlanSnapshot.plan_id.in_(plan_ids),
            PlanSnapshot.day >= since,
            PlanSnapshot.day <= until,
        )
        .order_by(PlanSnapshot.plan_id, PlanSnapshot.day)
    )
    for plan_id, day, expected, enrolled, online, healthy in rows:
        found[plan_id].append(DaySnapshot(day, expected, enrolled, online, healthy))
    return found


def daily_shares(snapshots: Sequence[DaySnapshot], until: date, days: int) -> list[DayShare]:
    """Share of expected devices online on each of the last `days` days, oldest first."""
    by_day = {s.day: s for s in snapshots}
    shares = []
    for back in range(days - 1, -1, -1):
        day = until - timedelta(days=back)
        snap = by_day.get(day)
        shares.append(DayShare(day, share_pct(snap.online, snap.expected) if snap else None))
    return shares


def gate(snapshots: Sequence[DaySnapshot], programme: Programme, as_of: date) -> Gate:
    """Live only when the online share met the gate on each of the last N days with snapshots.

    The window ends today if today's snapshot exists, else yesterday; a missing day breaks it.
    """
    by_day = {s.day: s for s in snapshots}
    day = as_of if as_of in by_day else as_of - timedelta(days=1)
    streak = 0
    while streak < programme.gate_days:
        snap = by_day.get(day)
        if snap is None or snap.expected <= 0:
            break
        if share_pct(snap.online, snap.expected) < programme.gate_online_pct:
            break
        streak += 1
        day -= timedelta(days=1)
    return Gate(
        live=programme.gate_days > 0 and streak >= programme.gate_days,
        qualifying_days=streak,
        required_days=programme.gate_days,
        online_pct=programme.gate_online_pct,
    )


def forecast_go_live(snapshots: Sequence[DaySnapshot], expected: int) -> date | None:
    """The day a straight-line fit of enrolled over time reaches expected; None with no trend."""
    if expected <= 0:
        return None
    reached = [s.day for s in snapshots if s.enrolled >= expected]
    if reached:
        return reached[0]
    if len(snapshots) < 2:
        return None
    recent = list(snapshots)[-TREND_WINDOW_DAYS:]
    origin = recent[0].day
    xs = [(s.day - origin).days for s in recent]
    ys = [s.enrolled for s in recent]
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return None
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
    if slope <= 0:
        return None
    intercept = mean_y - slope * mean_x
    days_needed = (expected - intercept) / slope
    days = min(FORECAST_HORIZON_DAYS, max(0, math.ceil(days_needed)))
    return origin + timedelta(days=days)


def rag(
    *,
    planned: date,
    forecast: date | None,
    live: bool,
    enrolled: int,
    expected: int,
    online_pct_now: float,
    gate_pct: float,
    overdue: Sequence[str],
    blockers: Sequence[str],
    today: date,
    dark: Sequence[tuple[str, int]] = (),
) -> Rag:
    """Red, amber or green with every reason a person needs to act on."""
    result = Rag("green")

    def worsen(status: str, reason: str) -> None:
        order = ("green", "amber", "red")
        if order.index(status) > order.index(result.status):
            result.status = status
        result.reasons.append(reason)

    complete = expected > 0 and enrolled >= expected
    if not live:
        if forecast is None and not complete:
            near = (planned - today).days < UNSTARTED_RED_DAYS
            worsen(
                "red" if near else "amber",
                f"no enrolment trend to forecast go-live from; planned {planned.isoformat()}",
            )
        elif forecast is not None and forecast > planned:
            slip = (forecast - planned).days
            worsen(
                "red" if slip > RED_SLIP_DAYS else "amber",
                f"forecast go-live {forecast.isoformat()} is {slip} day(s) after planned "
                f"{planned.isoformat()}",
            )
        if planned < today:
            worsen("red", f"planned go-live {planned.isoformat()} has passed and the gate fails")
    if complete and online_pct_now < gate_pct:
        worsen("amber", f"only {online_pct_now}% of expected devices online now (gate {gate_pct}%)")
    for path, devices in dark:
        worsen("amber", f"landing {path} has gone dark: none of its {devices} device(s) online")
    for name in overdue:
        worsen("amber", f"milestone overdue: {name}")
    for title in blockers:
        worsen("amber", f"blocker: {title}")
    return result
