"""Server time of the main web pages over a national-scale estate (120 prisons, 200,000 devices)."""

from __future__ import annotations

import json
import random
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import uvicorn
from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection

from fleet.app import create_app, settle_heap_for_serving
from fleet.auth.models import User
from fleet.auth.service import create_user
from fleet.bench.database import BenchError
from fleet.context import Context
from fleet.db import transaction, utcnow
from fleet.devices.models import Device, DeviceState
from fleet.estate.models import Location, Prison
from fleet.estate.service import seed_prisons
from fleet.migrate import upgrade
from fleet.settings import Settings

BENCH_USER = "bench-pages"
BENCH_PASSWORD = "bench pages password, not for real use"  # noqa: S105 - a throwaway account
WINGS, LANDINGS = 4, 4
HEALTH_WEIGHTS = (("ok", 85), ("warning", 10), ("critical", 5))
Progress = Callable[[str], None]
CELL_COLUMNS = ("prison_code", "path", "kind", "name", "parent_id", "capacity", "created_at")
DEVICE_COLUMNS = (
    "id",
    "serial",
    "kind",
    "prison_code",
    "location_id",
    "lifecycle",
    "hostname",
    "created_at",
    "enrolled_at",
)
STATE_COLUMNS = (
    "device_id",
    "online",
    "state",
    "boot",
    "seq",
    "last_seen",
    "last_report_ts",
    "state_ts",
    "agent_version",
    "config_version",
    "metrics",
    "health",
    "battery",
    "updated_at",
)


@dataclass(frozen=True)
class Timing:
    page: str
    url: str
    p50_ms: float
    p95_ms: float
    requests: int

    def line(self) -> str:
        return (
            f"{self.page:<28} p50 {self.p50_ms:7.1f} ms   p95 {self.p95_ms:7.1f} ms   ({self.url})"
        )


def _bench_device_id(index: int) -> str:
    return f"benchpg-{index:06d}"


def _rows_in_batches(rows: Iterator[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _copy(
    conn: Connection, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    """Bulk-load rows: COPY on PostgreSQL, multi-row INSERT elsewhere."""
    if conn.dialect.name == "postgresql":
        raw: Any = conn.connection.driver_connection
        with (
            raw.cursor() as cursor,
            cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        return
    model = {"location": Location, "device": Device, "device_state": DeviceState}[table]
    conn.execute(insert(model), [dict(zip(columns, row, strict=True)) for row in rows])


def _ensure_bench_user(ctx: Context) -> None:
    with transaction(ctx.sessions) as session:
        exists = session.scalar(select(User.id).where(User.username == BENCH_USER))
        if exists is None:
            create_user(
                session=session,
                username=BENCH_USER,
                role="estate-admin",
                prisons=[],
                password=BENCH_PASSWORD,
            )


def _seed_locations(conn: Connection, codes: Sequence[str], cells_per_landing: int) -> None:
    """Wings B1..B4 with four landings each and enough cells, in every prison."""
    wings = [
        {"prison_code": code, "path": f"{code}-B{w}", "kind": "wing", "name": f"Wing B{w}"}
        for code in codes
        for w in range(1, WINGS + 1)
    ]
    conn.execute(insert(Location), [w | {"capacity": 0} for w in wings])
    bench = Location.path.like("%-B%")
    wing_ids = conn.execute(
        select(Location.path, Location.id).where(Location.kind == "wing", bench)
    ).all()
    landings = [
        {
            "prison_code": path.split("-")[0],
            "path": f"{path}-{n}",
            "kind": "landing",
            "name": f"Landing {n}",
            "parent_id": wing_id,
            "capacity": 0,
        }
        for path, wing_id in wing_ids
        for n in range(1, LANDINGS + 1)
    ]
    conn.execute(insert(Location), landings)
    landing_ids = conn.execute(
        select(Location.path, Location.id, Location.prison_code).where(
            Location.kind == "landing", bench
        )
    ).all()
    now = utcnow()
    cells = (
        (code, f"{path}-{c:03d}", "cell", f"Cell {c:03d}", landing_id, 1, now)
        for path, landing_id, code in landing_ids
        for c in range(1, cells_per_landing + 1)
    )
    for batch in _rows_in_batches(cells, 20_000):
        _copy(conn, "location", CELL_COLUMNS, batch)


def _device_rows(
    rng: random.Random, index: int, code: str, cell: int
) -> tuple[tuple[Any, ...], tuple[Any, ...] | None]:
    """One device row and, when enrolled, its state row (mostly online and healthy)."""
    now = utcnow()
    device_id = _bench_device_id(index)
    enrolled = rng.random() < 0.97
    lifecycle = "enrolled" if enrolled else "registered"
    device: tuple[Any, ...] = (device_id, f"SN-{device_id}", "in_cell_phone", code, cell)
    device += (lifecycle, "", now, now if enrolled else None)
    if not enrolled:
        return device, None
    online = rng.random() < 0.92
    seen = now - timedelta(seconds=rng.randint(5, 600 if online else 86_400))
    health = rng.choices([level for level, _ in HEALTH_WEIGHTS], [w for _, w in HEALTH_WEIGHTS])[0]
    battery = round(rng.uniform(5, 100), 1)
    metrics = json.dumps({"battery": battery})
    state: tuple[Any, ...] = (device_id, online, "online" if online else "offline", 1, 1)
    state += (seen, seen, seen)
    state += ("1.0.0", 1, metrics, health, battery, now)
    return device, state


def seed(ctx: Context, *, prisons: int, devices: int, progress: Progress) -> list[str]:
    """Prisons, locations and devices for the bench; reuses what an earlier run left."""
    with transaction(ctx.sessions) as session:
        seed_prisons(session=session)
        codes = list(session.scalars(select(Prison.code).order_by(Prison.code).limit(prisons)))
        have = session.scalar(
            select(func.count()).select_from(Device).where(Device.id.like("benchpg-%"))
        )
    _ensure_bench_user(ctx)
    if len(codes) < prisons:
        raise BenchError(f"the prison register has {len(codes)} prisons, fewer than {prisons}")
    if have == devices:
        progress(f"reusing the {have} bench devices already in the database")
        return codes
    if have:
        raise BenchError(
            f"the database holds {have} bench devices, not {devices}; use a fresh database"
        )
    per_prison = -(-devices // prisons)
    started = time.monotonic()
    with ctx.engine.begin() as conn:
        _seed_locations(conn, codes, cells_per_landing=-(-per_prison // (WINGS * LANDINGS)))
        progress(f"locations seeded in {time.monotonic() - started:.1f} s")
        cells = conn.execute(
            select(Location.prison_code, Location.id)
            .where(Location.kind == "cell", Location.path.like("%-B%"))
            .order_by(Location.prison_code, Location.id)
        ).all()
        by_prison: dict[str, list[int]] = {}
        for code, cell in cells:
            by_prison.setdefault(code, []).append(cell)
        rng = random.Random(20261126)
        index = 0
        for code in codes:
            device_rows, state_rows = [], []
            for cell in by_prison[code][: min(per_prison, devices - index)]:
                device, state = _device_rows(rng, index, code, cell)
                device_rows.append(device)
                if state is not None:
                    state_rows.append(state)
                index += 1
            _copy(conn, "device", DEVICE_COLUMNS, device_rows)
            _copy(conn, "device_state", STATE_COLUMNS, state_rows)
            progress(f"devices: {index}/{devices} ({time.monotonic() - started:.0f} s)")
    return codes


def _percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


@contextmanager
def _serving(settings: Settings) -> Iterator[str]:
    """The app under uvicorn on a free loopback port, in a background thread."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    app = create_app(settings)
    settle_heap_for_serving()  # as `estate serve` does
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="bench-pages-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise BenchError("the web server did not start within 20 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _sign_in(client: httpx.Client) -> None:
    form = client.get("/sign-in").text
    token = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    answer = client.post(
        "/sign-in",
        data={"username": BENCH_USER, "password": BENCH_PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    if answer.status_code != 303:
        raise BenchError(f"could not sign in as {BENCH_USER}: HTTP {answer.status_code}")


def time_pages(
    settings: Settings, *, prison: str, device: str, requests: int, progress: Progress
) -> list[Timing]:
    """p50/p95 of response time per page over loopback, one request at a time."""
    pages = [
        ("Estate overview", "/estate"),
        ("Estate overview, sorted", "/estate?sort=healthy&order=desc"),
        ("Prison page", f"/prisons/{prison}"),
        ("Device list, filtered", f"/devices?prison={prison}&online=false"),
        ("Device list, search", f"/devices?q={device[:-2]}"),
        ("Device page", f"/devices/{device}"),
    ]
    timings = []
    with (
        _serving(settings) as base,
        httpx.Client(base_url=base, headers={"accept": "text/html"}, timeout=60) as client,
    ):
        _sign_in(client)
        for name, url in pages:
            first = client.get(url, follow_redirects=False)
            if first.status_code == 404:
                progress(f"{name}: {url} is not served (404); skipped")
                continue
            if first.status_code != 200:
                raise BenchError(f"{name}: {url} answered HTTP {first.status_code}")
            samples = []
            for _ in range(requests):
                started = time.perf_counter()
                answer = client.get(url, follow_redirects=False)
                samples.append((time.perf_counter() - started) * 1000)
                if answer.status_code != 200:
                    raise BenchError(f"{name}: {url} answered HTTP {answer.status_code}")
            timing = Timing(
                name, url, statistics.median(samples), _percentile(samples, 95), len(samples)
            )
            progress(timing.line())
            timings.append(timing)
    return timings


def run_pages_bench(
    settings: Settings, *, prisons: int, devices: int, requests: int, progress: Progress
) -> list[Timing]:
    ctx = Context(settings)
    try:
        upgrade(ctx.engine)
        codes = seed(ctx, prisons=prisons, devices=devices, progress=progress)
        if ctx.engine.dialect.name == "postgresql":
            with ctx.engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")
        prison = codes[len(codes) // 2]
        with transaction(ctx.sessions) as session:
            device = session.scalar(
                select(Device.id)
                .where(Device.prison_code == prison, Device.id.like("benchpg-%"))
                .order_by(Device.id)
                .limit(1)
            )
        if device is None:
            raise BenchError(f"no bench device in {prison}; use a fresh database")
        return time_pages(
            settings, prison=prison, device=device, requests=requests, progress=progress
        )
    finally:
        ctx.close()
