"""`estate bench api` at a tiny scale: its own database, `estate serve`, wrk, real figures."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import psycopg

from fleet.bench.api_load import Endpoint, parse_wrk
from tests.deploy.processes import estate_env
from tests.services.postgres import ADMIN_DSN

LINE = re.compile(
    r"^(?P<name>.+?)\s+(?P<rate>[\d.]+) req/s\s+p50\s+(?P<p50>[\d.]+) ms\s+p99\s+(?P<p99>[\d.]+) ms"
    r"\s+(?P<requests>\d+) requests, (?P<errors>\d+) errors\s+\((?P<path>/api/v1/\S+)\)$"
)


def _bench_databases() -> set[str]:
    with psycopg.connect(ADMIN_DSN) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'estate_bench_api_%'"
        )
        return {row[0] for row in rows}


def test_api_bench_loads_every_endpoint_and_drops_its_database() -> None:
    before = _bench_databases()
    admin_url = ADMIN_DSN.replace("postgresql://", "postgresql+psycopg://")
    done = subprocess.run(
        [str(Path(sys.executable).with_name("estate")), "bench", "api", "--prisons", "2",
         "--devices", "200", "--faults", "500", "--seconds", "1", "--connections", "4",
         "--threads", "1", "--workers", "1"],
        env=estate_env(ESTATE_DATABASE_URL=admin_url),
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [LINE.match(line) for line in done.stdout.splitlines()]
    assert all(rows), done.stdout
    figures = {m["name"]: m for m in rows if m}
    assert list(figures) == [
        "Estate overview",
        "Devices, one prison offline",
        "Devices, critical, last seen",
        "Devices, search",
        "Faults, one prison open",
        "Faults, P1 across the estate",
    ]
    for m in figures.values():
        assert float(m["rate"]) > 0
        assert 0 < float(m["p50"]) <= float(m["p99"])
        assert int(m["requests"]) > 0
        assert m["errors"] == "0"
    assert "faults: 500/500" in done.stderr  # progress on stderr, figures alone on stdout
    assert "devices: 200/200" in done.stderr
    assert _bench_databases() == before, "the bench database should be dropped"


def test_wrk_errors_and_units_are_read_not_ignored() -> None:
    output = """Running 1s test @ http://127.0.0.1:1/api/v1/prisons
  Latency Distribution
     50%  850.00us
     75%    1.20ms
     90%    2.00ms
     99%    1.50s
  1200 requests in 1.00s, 1.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:   1199.50
Transfer/sec:      1.00MB
"""
    result = parse_wrk(Endpoint("x", "/api/v1/prisons"), output)
    assert result.p50_ms == 0.85
    assert result.p99_ms == 1500.0
    assert result.requests == 1200
    assert result.requests_per_s == 1199.5
    assert result.errors == 10
