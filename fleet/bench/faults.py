"""Fault list and reports response times over a national history (1M faults, 120 prisons)."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy import select, text
from sqlalchemy.engine import Connection, make_url

from facilities.faults.models import CATEGORIES, PRIORITIES
from facilities.faults.sla import default_minutes
from facilities.faults.workflow import OPEN_STATUSES
from fleet.auth.service import create_user, issue_token
from fleet.bench.database import BenchError, bench_database
from fleet.bench.pages import Timing, _copy, _percentile, _seed_locations, _serving
from fleet.context import Context
from fleet.db import transaction, utcnow
from fleet.estate.models import Location, Prison
from fleet.estate.service import seed_prisons
from fleet.migrate import upgrade
from fleet.settings import Settings

Progress = Callable[[str], None]
TARGET_MS = 150.0
HISTORY_DAYS = 3 * 365
WINDOW_DAYS = 15
CELLS_PER_LANDING = 30
# Places that keep failing the same way, so the recurring list has something to find.
HOT_SPOT_SHARE = 0.08
FAULT_COLUMNS = (
    "reference", "prison_code", "number", "location_id", "category", "priority", "status",
    "description", "reporter", "reported_at", "due_respond_at", "due_clear_at", "responded_at",
    "cleared_at", "closed_at", "paused_seconds", "breached_at", "recurring", "source",
    "blocks_rollout", "version", "updated_at",
)  # fmt: skip
# Rough shares of where a fault younger than its clear target stands.
OPEN_WEIGHTS = (
    ("reported", 2),
    ("triaged", 2),
    ("assigned", 3),
    ("in_progress", 3),
    ("on_hold", 1),
)


@dataclass(frozen=True)
class Result:
    timings: list[Timing]
    faults: int
    prisons: int
    seed_s: float
    database: str
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average before and after timing

    def lines(self) -> list[str]:
        head = (
            f"{self.faults:,} faults across {self.prisons} prisons "
            f"(seeded in {self.seed_s:.0f} s); target p95 < {TARGET_MS:.0f} ms; "
            f"load average {self.load[0]:.1f} before timing, {self.load[1]:.1f} after, "
            f"on {os.cpu_count()} CPUs"
        )
        return [head] + [
            f"{t.line()}  {'ok' if t.p95_ms < TARGET_MS else 'OVER TARGET'}" for t in self.timings
        ]


def _fault_row(
    rng: random.Random, reported: datetime, cell: int, category: str, now: datetime
) -> tuple[Any, ...]:
    """One historical fault from `priority` on: old ones closed, young ones along the workflow."""
    priority = rng.choices(PRIORITIES, (5, 20, 45, 30))[0]
    respond_min, clear_min = default_minutes(category, priority)
    due_respond = reported + timedelta(minutes=respond_min)
    due_clear = reported + timedelta(minutes=clear_min)
    # Nine in ten meet their targets; the rest run up to three times over.
    late = rng.random() < 0.1
    respond_at = reported + timedelta(minutes=respond_min * rng.uniform(0.1, 3 if late else 1))
    clear_at = reported + timedelta(minutes=clear_min * rng.uniform(0.2, 3 if late else 1))
    status = "closed"
    responded: datetime | None = respond_at
    cleared: datetime | None = clear_at
    closed: datetime | None = None
    if clear_at > now:  # still being worked
        status = rng.choices([s for s, _ in OPEN_WEIGHTS], [w for _, w in OPEN_WEIGHTS])[0]
        cleared = None
        if status == "reported" or respond_at > now:
            status, responded = "reported", None
    elif rng.random() < 0.04:
        status, responded, cleared = "cancelled", None, None
        closed = reported + timedelta(hours=1)
    else:
        closed = clear_at + timedelta(hours=rng.uniform(1, 72))
        if closed > now:
            status, closed = "cleared", None
    breached = due_clear if (cleared or now) > due_clear else None
    return (
        cell, category, priority, status, "Historical fault for the bench", "bench", reported,
        due_respond, due_clear, responded, cleared, closed, 0, breached, False, "staff", False, 1,
        closed or cleared or reported,
    )  # fmt: skip


def seed_faults(ctx: Context, *, faults: int, prisons: int, progress: Progress) -> list[str]:
    """Prisons, their location trees and `faults` historical faults, loaded with COPY.

    Faults are written oldest first, a fortnight at a time, as a live table fills up, so the
    rows of a recent period sit together on disk as they would in production."""
    with transaction(ctx.sessions) as session:
        seed_prisons(session=session)
        codes = list(session.scalars(select(Prison.code).order_by(Prison.code).limit(prisons)))
    if len(codes) < prisons:
        raise BenchError(f"the prison register has {len(codes)} prisons, fewer than {prisons}")
    now = utcnow()
    rng = random.Random(20261126)
    started = time.monotonic()
    with ctx.engine.begin() as conn:
        _seed_locations(conn, codes, cells_per_landing=CELLS_PER_LANDING)
        cells: dict[str, list[int]] = {}
        for code, cell in conn.execute(
            select(Location.prison_code, Location.id).where(Location.kind == "cell")
        ):
            cells.setdefault(code, []).append(cell)
        progress(f"locations: {sum(map(len, cells.values())):,} cells ({_since(started)})")
        hot = {code: rng.sample(cells[code], 5) for code in codes}
        numbers = dict.fromkeys(codes, 0)
        windows = HISTORY_DAYS // WINDOW_DAYS
        made = 0
        for w in range(windows):
            count = (faults - made) // (windows - w)
            first = now - timedelta(days=HISTORY_DAYS - w * WINDOW_DAYS)
            span = min(timedelta(days=WINDOW_DAYS), now - first).total_seconds()
            times = sorted(first + timedelta(seconds=rng.uniform(0, span)) for _ in range(count))
            rows = []
            for reported in times:
                code = rng.choice(codes)
                numbers[code] += 1
                rows.append(_numbered(rng, code, numbers[code], reported, cells, hot, now))
            _copy(conn, "fault", FAULT_COLUMNS, rows)
            made += count
            if w % 10 == 9 or w == windows - 1:
                progress(f"faults: {made:,}/{faults:,} ({_since(started)})")
        conn.execute(
            text("INSERT INTO fault_counter (prison_code, last_number) VALUES (:c, :n)"),
            [{"c": code, "n": n} for code, n in numbers.items()],
        )
        _flag_recurring(conn)
    with ctx.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")
    progress(f"recurring flagged, vacuumed and analysed ({_since(started)})")
    return codes


def _numbered(
    rng: random.Random,
    code: str,
    number: int,
    reported: datetime,
    cells: dict[str, list[int]],
    hot: dict[str, list[int]],
    now: datetime,
) -> tuple[Any, ...]:
    if rng.random() < HOT_SPOT_SHARE:
        spot = rng.randrange(len(hot[code]))
        row = _fault_row(rng, reported, hot[code][spot], CATEGORIES[spot], now)
    else:
        row = _fault_row(rng, reported, rng.choice(cells[code]), rng.choice(CATEGORIES), now)
    return (f"{code}-F-{number:06d}", code, number, *row)


def _flag_recurring(conn: Connection) -> None:
    """Flag faults with 2+ others of their category at their place in the 30 days before."""
    conn.exec_driver_sql(
        """
        UPDATE fault SET recurring = true FROM (
            SELECT id, count(*) OVER (
                PARTITION BY location_id, category ORDER BY reported_at
                RANGE BETWEEN INTERVAL '30 days' PRECEDING AND CURRENT ROW) AS n
            FROM fault) AS w
        WHERE w.id = fault.id AND w.n >= 3
        """
    )


def _since(started: float) -> str:
    return f"{time.monotonic() - started:.0f} s"


def _bearer(ctx: Context, username: str, role: str, prisons: list[str]) -> dict[str, str]:
    with transaction(ctx.sessions) as session:
        user = create_user(session=session, username=username, role=role, prisons=prisons)
        return {"Authorization": f"Bearer {issue_token(session=session, user=user)}"}


def bench_urls(prison: str, category: str) -> list[tuple[str, str, str]]:
    """(name, who, url): what is timed, and whether as the prison's staff or an estate admin."""
    open_q = [("prison", prison)] + [("status", s) for s in OPEN_STATUSES]
    return [
        ("Open faults, prison", "staff", "/api/v1/faults?" + urlencode(open_q)),
        (
            "Open faults, category+prio",
            "staff",
            "/api/v1/faults?" + urlencode([*open_q, ("category", category), ("priority", "P3")]),
        ),
        (
            "Breached, sorted by due",
            "staff",
            "/api/v1/faults?"
            + urlencode([*open_q, ("breached", "true"), ("sort", "due_clear_at")]),
        ),
        (
            "Open faults on a wing",
            "staff",
            "/api/v1/faults?" + urlencode([*open_q, ("location", f"{prison}-B1")]),
        ),
        ("All faults, one prison", "staff", "/api/v1/faults?" + urlencode({"prison": prison})),
        ("Report API, prison, 30 d", "staff", f"/api/v1/fault-reports?prison={prison}"),
        ("Report page, prison, 30 d", "staff", f"/faults/reports?prison={prison}"),
        ("Report page, estate, 30 d", "admin", "/faults/reports"),
        ("Report API, estate, 365 d", "admin", _year_report()),
        ("Places, a wing with counts", "staff", f"/places/{prison}-B1"),
        ("Places, search by code", "admin", f"/places?q={prison}-B2-3"),
    ]


def _year_report() -> str:
    today = utcnow().date()
    return f"/api/v1/fault-reports?from={(today - timedelta(days=364)).isoformat()}"


def time_urls(
    settings: Settings,
    urls: list[tuple[str, str, str]],
    headers: dict[str, dict[str, str]],
    requests: int,
    progress: Progress,
) -> list[Timing]:
    """p50/p95 of each URL over loopback, one request at a time after one warm-up."""
    timings = []
    with (
        _serving(settings) as base,
        httpx.Client(base_url=base, headers={"accept": "text/html"}, timeout=60) as client,
    ):
        for name, who, url in urls:
            samples = []
            for i in range(requests + 1):
                started = time.perf_counter()
                answer = client.get(url, headers=headers[who], follow_redirects=False)
                took = (time.perf_counter() - started) * 1000
                if answer.status_code != 200:
                    raise BenchError(f"{name}: {url} answered HTTP {answer.status_code}")
                if i:
                    samples.append(took)
            samples.sort()
            timing = Timing(
                name, url, samples[len(samples) // 2], _percentile(samples, 95), requests
            )
            progress(timing.line())
            timings.append(timing)
    return timings


def run_faults_bench(
    settings: Settings,
    *,
    faults: int,
    prisons: int,
    requests: int,
    keep: bool,
    progress: Progress,
) -> Result:
    """Seed a database of its own, time the fault list and reports, then drop it."""
    with bench_database(settings, purpose="faults", keep=keep, progress=progress) as own:
        ctx = Context(own)
        try:
            upgrade(ctx.engine)
            started = time.monotonic()
            codes = seed_faults(ctx, faults=faults, prisons=prisons, progress=progress)
            seeded = time.monotonic() - started
            prison = codes[len(codes) // 2]
            headers = {
                "staff": _bearer(ctx, "bench-facilities", "facilities", [prison]),
                "admin": _bearer(ctx, "bench-admin", "estate-admin", []),
            }
            urls = bench_urls(prison, "heating")
            before = os.getloadavg()[0]
            timings = time_urls(own, urls, headers, requests, progress)
            load = (before, os.getloadavg()[0])
        finally:
            ctx.close()
        name = make_url(own.database_url).database or ""
        return Result(timings, faults, len(codes), seeded, name, load)
