"""The main API list endpoints under concurrent load: `estate serve` as in production, driven by
wrk (Debian's HTTP load generator) over a database of its own seeded with a national estate."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import psutil
from sqlalchemy import select

from facilities.faults.models import CATEGORIES, PRIORITIES
from facilities.faults.service import reference
from facilities.faults.workflow import STATUSES
from fleet.auth.service import create_user, issue_token
from fleet.bench.child import free_port
from fleet.bench.database import bench_database
from fleet.bench.pages import BenchError, _copy, _rows_in_batches, seed
from fleet.context import Context
from fleet.db import transaction, utcnow
from fleet.estate.models import Location
from fleet.migrate import upgrade
from fleet.settings import Settings
from fleet.signing import new_seed_b64

Progress = Callable[[str], None]
BENCH_USER = "bench-api"
FAULT_COLUMNS = (
    "reference", "prison_code", "number", "location_id", "device_id", "category", "priority",
    "status", "description", "reporter", "reported_at", "due_respond_at", "due_clear_at",
    "paused_seconds", "recurring", "source", "blocks_rollout", "version", "updated_at",
)  # fmt: skip
# Most faults are long closed; the open ones are what people list.
STATUS_WEIGHTS = {"closed": 70, "cleared": 8, "reported": 8, "triaged": 4, "assigned": 4}
_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
IDLE_CPU_PERCENT = 10.0


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str


@dataclass(frozen=True)
class LoadResult:
    endpoint: Endpoint
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int

    def line(self) -> str:
        if not self.requests:
            return (
                f"{self.endpoint.name:<34} no request completed in the run "
                f"({self.errors} errors): the server is saturated   ({self.endpoint.path})"
            )
        return (
            f"{self.endpoint.name:<34} {self.requests_per_s:8.1f} req/s   "
            f"p50 {self.p50_ms:8.1f} ms   p99 {self.p99_ms:8.1f} ms   "
            f"{self.requests} requests, {self.errors} errors   ({self.endpoint.path})"
        )


def endpoints(prison: str, device_prefix: str) -> list[Endpoint]:
    """The list endpoints people and scripts hit most, with the filters they use."""
    return [
        Endpoint("Estate overview", "/api/v1/prisons"),
        Endpoint("Devices, one prison offline", f"/api/v1/devices?prison={prison}&online=false"),
        Endpoint("Devices, critical, last seen", "/api/v1/devices?health=critical&sort=-last_seen"),
        Endpoint("Devices, search", f"/api/v1/devices?q={device_prefix}"),
        Endpoint("Faults, one prison open", f"/api/v1/faults?prison={prison}&status=reported"),
        Endpoint("Faults, P1 across the estate", "/api/v1/faults?priority=P1&sort=due_clear_at"),
    ]  # fmt: skip


def parse_wrk(endpoint: Endpoint, output: str) -> LoadResult:
    """Figures from `wrk --latency` output."""
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    total = re.search(r"^\s*(\d+) requests in", output, re.MULTILINE)
    latencies = {
        pct: float(value) * _UNITS_MS[unit] for pct, value, unit in _LATENCY.findall(output)
    }
    if rate is None or total is None or set(latencies) != {"50", "99"}:
        raise BenchError(f"could not read wrk's figures for {endpoint.path}:\n{output[-1500:]}")
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses:\s+(\d+)", output)) + sum(
        int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output)
    )
    return LoadResult(
        endpoint,
        float(rate.group(1)),
        latencies["50"],
        latencies["99"],
        int(total.group(1)),
        errors,
    )


def seed_faults(ctx: Context, *, faults: int, codes: list[str], progress: Progress) -> None:
    """`faults` faults over the bench cells of these prisons, streamed in with COPY."""
    with transaction(ctx.sessions) as session:
        cells = session.execute(
            select(Location.prison_code, Location.id).where(
                Location.kind == "cell", Location.prison_code.in_(codes)
            )
        ).all()
    if not cells:
        raise BenchError("no cells to raise faults against; seed devices first")
    rng = random.Random(20261126)
    now = utcnow()
    numbers = dict.fromkeys(codes, 0)
    statuses, weights = list(STATUS_WEIGHTS), list(STATUS_WEIGHTS.values())
    assert set(statuses) <= set(STATUSES)

    def rows() -> Iterator[tuple[object, ...]]:
        for _ in range(faults):
            code, cell = cells[rng.randrange(len(cells))]
            numbers[code] += 1
            reported = now - timedelta(minutes=rng.randrange(60 * 24 * 365 * 3))
            yield (
                reference(code, numbers[code]), code, numbers[code], cell, None,
                rng.choice(CATEGORIES), rng.choice(PRIORITIES),
                rng.choices(statuses, weights)[0], "Handset has no dial tone", "bench",
                reported, reported + timedelta(hours=4), reported + timedelta(days=5),
                0, False, "staff", False, 1, reported,
            )  # fmt: skip

    started = time.monotonic()
    done = 0
    with ctx.engine.begin() as conn:
        for batch in _rows_in_batches(rows(), 50_000):
            _copy(conn, "fault", FAULT_COLUMNS, batch)
            done += len(batch)
            progress(f"faults: {done}/{faults} ({time.monotonic() - started:.0f} s)")
        conn.exec_driver_sql(
            "INSERT INTO fault_counter (prison_code, last_number) "
            "SELECT prison_code, max(number) FROM fault GROUP BY prison_code "
            "ON CONFLICT (prison_code) DO UPDATE SET last_number = excluded.last_number"
        )
        conn.exec_driver_sql("ANALYZE")


def bench_token(ctx: Context) -> str:
    with transaction(ctx.sessions) as session:
        user = create_user(session=session, username=BENCH_USER, role="estate-admin")
        return issue_token(session=session, user=user, name="estate bench api")


@dataclass(frozen=True)
class Server:
    base: str
    pid: int

    def wait_idle(self, progress: Progress, timeout_s: float = 120) -> None:
        """Let requests left over from the last run finish (wrk hangs up; the server does not)."""
        try:
            tree = [psutil.Process(self.pid), *psutil.Process(self.pid).children(recursive=True)]
        except psutil.NoSuchProcess as exc:
            raise BenchError("estate serve has exited") from exc
        for process in tree:
            process.cpu_percent(interval=None)  # the first call only starts the measurement
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            time.sleep(0.5)
            busy = sum(p.cpu_percent(interval=None) for p in tree)
            if busy < IDLE_CPU_PERCENT:
                return
            progress(f"waiting for the server to finish earlier requests ({busy:.0f}% CPU)")
        progress(f"the server was still busy after {timeout_s:g} s; carrying on")


@contextmanager
def serving(database_url: str, *, workers: int, log: Path, progress: Progress) -> Iterator[Server]:
    """`estate serve` in a child process with the production profile; yields its base URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESTATE_")}
    env |= {
        "ESTATE_PROFILE": "production",
        "ESTATE_DATABASE_URL": database_url,
        "ESTATE_SECRET_KEY": os.urandom(32).hex(),
        "ESTATE_SIGNING_KEY": new_seed_b64(),
        "ESTATE_MQTT_URL": "mqtt://127.0.0.1:1883",
        "ESTATE_DATA_DIR": str(log.parent),
    }
    args = [sys.executable, "-c", "from fleet.cli import main; main()", "serve"]
    args += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    with open(log, "wb") as out:
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:]
                raise BenchError(f"estate serve exited with {process.returncode}:\n{tail}")
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise BenchError("estate serve was not ready within 60 s")
            time.sleep(0.2)
        progress(f"estate serve ready on {base} with {workers} worker(s)")
        yield Server(base, process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def run_wrk(
    base: str, token: str, endpoint: Endpoint, *, seconds: float, connections: int, threads: int
) -> LoadResult:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError(
            "wrk is not installed: run scripts/install-system-deps (apt-get install wrk)"
        )
    answer = httpx.get(
        base + endpoint.path, headers={"Authorization": f"Bearer {token}"}, timeout=60
    )
    if answer.status_code != 200:
        raise BenchError(f"{endpoint.path} answered HTTP {answer.status_code}: {answer.text[:300]}")
    done = subprocess.run(
        [wrk, f"--threads={threads}", f"--connections={connections}", f"--duration={seconds:g}s",
         "--timeout=30s", "--latency", "--header", f"Authorization: Bearer {token}",
         base + endpoint.path],
        capture_output=True, text=True, timeout=seconds + 120, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr[-1000:]}")
    return parse_wrk(endpoint, done.stdout)


def run_api_bench(
    settings: Settings,
    *,
    prisons: int,
    devices: int,
    faults: int,
    seconds: float,
    connections: int,
    threads: int,
    workers: int,
    keep_database: bool,
    progress: Progress,
) -> list[LoadResult]:
    """Seed, serve, load each endpoint in turn; the figures per endpoint."""
    with (
        bench_database(settings, purpose="api", keep=keep_database, progress=progress) as own,
        tempfile.TemporaryDirectory(prefix="estate-bench-api-") as tmp,
    ):
        url = own.effective_database_url
        ctx = Context(Settings(database_url=url, profile="test", data_dir=Path(tmp)))
        try:
            upgrade(ctx.engine)
            codes = seed(ctx, prisons=prisons, devices=devices, progress=progress)
            seed_faults(ctx, faults=faults, codes=codes, progress=progress)
            token = bench_token(ctx)
        finally:
            ctx.close()
        results = []
        log = Path(tmp) / "serve.log"
        with serving(url, workers=workers, log=log, progress=progress) as server:
            for endpoint in endpoints(codes[len(codes) // 2], "benchpg-0001"):
                server.wait_idle(progress)
                result = run_wrk(
                    server.base,
                    token,
                    endpoint,
                    seconds=seconds,
                    connections=connections,
                    threads=threads,
                )
                progress(result.line())
                results.append(result)
        return results
