"""Rollout tracking at national scale: programme overview API and page, and the daily snapshot.

Runs in a database of its own (created on the server ESTATE_DATABASE_URL points at, dropped
afterwards): prisons and devices are seeded as `estate bench pages` seeds them, then one
programme with every prison in it and years of daily snapshots loaded with COPY.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import httpx
from sqlalchemy import func, select

from fleet.auth.service import get_user, issue_token
from fleet.bench.database import BenchError, bench_database
from fleet.bench.pages import BENCH_USER, _copy, _percentile, _serving, _sign_in, seed
from fleet.context import Context
from fleet.db import transaction, utcnow
from fleet.migrate import upgrade
from fleet.rollout.common import OVERVIEW_COUNTS_MAX_AGE_S
from fleet.rollout.counts import cell_counts, count_now
from fleet.rollout.history import take_snapshots
from fleet.rollout.measure import expected_devices
from fleet.rollout.models import PrisonPlan
from fleet.rollout.schemas import PlanCreate, ProgrammeCreate
from fleet.rollout.service import add_plan, create_programme, get_programme
from fleet.settings import Settings

Progress = Callable[[str], None]
OVERVIEW_TARGET_MS = 150.0
SNAPSHOT_TARGET_S = 10.0
WAVES = 6
SNAPSHOT_COLUMNS = ("plan_id", "day", "expected", "enrolled", "online", "healthy", "taken_at")


@dataclass(frozen=True)
class Timing:
    name: str
    url: str
    p50_ms: float
    p95_ms: float
    max_ms: float
    requests: int
    target_ms: float | None = None

    def line(self) -> str:
        target = f"   target < {self.target_ms:.0f} ms" if self.target_ms else ""
        return (
            f"{self.name:<30} p50 {self.p50_ms:7.1f} ms   p95 {self.p95_ms:7.1f} ms"
            f"   max {self.max_ms:7.1f} ms{target}   ({self.url})"
        )


@dataclass(frozen=True)
class Figures:
    prisons: int
    devices: int
    snapshot_rows: int
    timings: list[Timing]
    snapshot_s: float
    snapshot_again_s: float
    plans_snapshotted: int
    recount_ms: float

    def lines(self) -> list[str]:
        head = (
            f"rollout bench: {self.prisons} prisons, {self.devices} devices, "
            f"{self.snapshot_rows} daily snapshots"
        )
        job = (
            f"{'Snapshot job, whole estate':<30} {self.snapshot_s:7.2f} s first run, "
            f"{self.snapshot_again_s:.2f} s again the same day ({self.plans_snapshotted} plans)"
            f"   target < {SNAPSHOT_TARGET_S:.0f} s"
        )
        recount = (
            f"{'Whole-estate device recount':<30} {self.recount_ms:7.1f} ms, off the request "
            f"path: the overview shares one count, recounted behind it once "
            f"{OVERVIEW_COUNTS_MAX_AGE_S / 2:.1f} s old"
        )
        return [head, *(t.line() for t in self.timings), recount, job]


def _plan_programme(ctx: Context, codes: Sequence[str], *, start: date, today: date) -> int:
    """One in-cell phone programme with every prison, go-lives spread over the history."""
    span = (today - start).days
    with transaction(ctx.sessions) as session:
        programme = create_programme(
            session=session,
            actor="bench",
            data=ProgrammeCreate.model_validate(
                {
                    "name": "Bench: in-cell phones everywhere",
                    "device_kinds": ["in_cell_phone"],
                    "start_date": start,
                    "target_date": today + timedelta(days=180),
                }
            ),
        )
        for index, code in enumerate(codes):
            wave = 1 + index * WAVES // len(codes)
            # Earlier waves went live within the history; the last waves are still to come.
            planned = start + timedelta(days=60 + (span + 120) * (wave - 1) // WAVES)
            add_plan(
                session=session,
                actor="bench",
                programme=programme,
                data=PlanCreate.model_validate(
                    {"prison_code": code, "wave": wave, "planned_go_live": planned}
                ),
            )
        return programme.id


def _snapshot_history(
    ctx: Context, programme_id: int, *, start: date, today: date, progress: Progress
) -> int:
    """Daily rows from `start` to yesterday per plan: enrolment ramps up to each go-live."""
    rng = random.Random(4_2026)
    with transaction(ctx.sessions) as session:
        plans = list(
            session.scalars(select(PrisonPlan).where(PrisonPlan.programme_id == programme_id))
        )
        programme = get_programme(session=session, programme_id=programme_id)
        assert programme is not None
        cells = cell_counts(session=session, prison_codes=[p.prison_code for p in plans])
        expected = {
            p.id: expected_devices(p, programme, cells.get(p.prison_code, 0))[0] for p in plans
        }
        planned = {p.id: p.planned_go_live for p in plans}
    days = (today - start).days
    written = 0
    taken = utcnow()
    with ctx.engine.begin() as conn:
        for plan_id, want in expected.items():
            ramp_start = planned[plan_id] - timedelta(days=90)
            rows = []
            for back in range(days, 0, -1):
                day = today - timedelta(days=back)
                share = min(1.0, max(0.0, (day - ramp_start).days / 80))
                enrolled = int(want * share * 0.97)
                online = int(enrolled * rng.uniform(0.9, 0.995))
                healthy = int(online * rng.uniform(0.85, 0.95))
                rows.append((plan_id, day, want, enrolled, online, healthy, taken))
            _copy(conn, "rollout_snapshot", SNAPSHOT_COLUMNS, rows)
            written += len(rows)
    progress(f"snapshots: {written} rows for {len(expected)} plans")
    return written


def _time(client: httpx.Client, name: str, url: str, requests: int, target: float | None) -> Timing:
    first = client.get(url, follow_redirects=False)
    if first.status_code != 200:
        raise BenchError(f"{name}: {url} answered HTTP {first.status_code}: {first.text[:200]}")
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        answer = client.get(url, follow_redirects=False)
        samples.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200:
            raise BenchError(f"{name}: {url} answered HTTP {answer.status_code}")
    return Timing(
        name,
        url,
        statistics.median(samples),
        _percentile(samples, 95),
        max(samples),
        len(samples),
        target,
    )


def _time_requests(
    settings: Settings,
    ctx: Context,
    programme_id: int,
    prison: str,
    requests: int,
    progress: Progress,
) -> list[Timing]:
    with transaction(ctx.sessions) as session:
        user = get_user(session=session, username=BENCH_USER)
        assert user is not None
        token = issue_token(session=session, user=user, name="rollout bench")
    api_headers = {"Authorization": f"Bearer {token}"}
    base_path = f"/api/v1/programmes/{programme_id}"
    wanted = [
        ("Overview API", f"{base_path}/prisons", True, OVERVIEW_TARGET_MS),
        ("Overview page", f"/rollout/{programme_id}", False, OVERVIEW_TARGET_MS),
        (
            "Overview page, sorted by RAG",
            f"/rollout/{programme_id}?sort=rag&order=desc",
            False,
            OVERVIEW_TARGET_MS,
        ),
        ("Prison rollout page", f"/rollout/{programme_id}/prisons/{prison}", False, None),
        ("Prison plan API", f"{base_path}/prisons/{prison}", True, None),
        ("Overview CSV", f"{base_path}/prisons.csv", True, None),
        ("Burn-up API, whole history", f"{base_path}/burnup", True, None),
    ]
    timings = []
    with (
        _serving(settings) as base,
        httpx.Client(base_url=base, headers={"accept": "text/html"}, timeout=120) as pages,
        httpx.Client(base_url=base, headers=api_headers, timeout=120) as api,
    ):
        _sign_in(pages)
        for name, url, is_api, target in wanted:
            timing = _time(api if is_api else pages, name, url, requests, target)
            progress(timing.line())
            timings.append(timing)
    return timings


def _analyze(ctx: Context) -> None:
    """Fresh planner statistics after a bulk load, as autovacuum would give a live database."""
    with ctx.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")


def _time_recount(ctx: Context, kinds: Sequence[str]) -> float:
    """Median time to count every device afresh, as the overview does when its count is old."""
    samples = []
    for _ in range(5):
        started = time.perf_counter()
        with transaction(ctx.sessions) as session:
            count_now(session=session, prison_codes=None, kinds=kinds)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def _time_snapshot(ctx: Context, today: date) -> tuple[float, int]:
    started = time.perf_counter()
    with transaction(ctx.sessions) as session:
        written = take_snapshots(session=session, day=today)
    return time.perf_counter() - started, written


def run_rollout_bench(
    settings: Settings,
    *,
    prisons: int,
    devices: int,
    days: int,
    requests: int,
    keep: bool = False,
    progress: Progress,
) -> Figures:
    """Seed an estate in a database of its own, then time the overview and the snapshot job."""
    with bench_database(settings, purpose="rollout", keep=keep, progress=progress) as own:
        ctx = Context(own)
        try:
            upgrade(ctx.engine)
            codes = seed(ctx, prisons=prisons, devices=devices, progress=progress)
            _analyze(ctx)
            today = utcnow().date()
            start = today - timedelta(days=days)
            programme_id = _plan_programme(ctx, codes, start=start, today=today)
            progress(f"programme planned: {len(codes)} prisons in {WAVES} waves")
            rows = _snapshot_history(ctx, programme_id, start=start, today=today, progress=progress)
            _analyze(ctx)
            first_s, written = _time_snapshot(ctx, today)
            progress(f"snapshot job: {written} plans in {first_s:.2f} s")
            again_s, _ = _time_snapshot(ctx, today)
            with transaction(ctx.sessions) as session:
                total = session.scalar(select(func.count()).select_from(PrisonPlan))
            if written != total:
                raise BenchError(f"the snapshot job wrote {written} rows for {total} plans")
            timings = _time_requests(
                own, ctx, programme_id, codes[len(codes) // 2], requests, progress
            )
            recount_ms = _time_recount(ctx, ["in_cell_phone"])
            return Figures(
                len(codes), devices, rows + written, timings, first_s, again_s, written, recount_ms
            )
        finally:
            ctx.close()
