"""`estate serve --workers 2` counts every request once, whichever worker answers it or /metrics."""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from fleet.context import Context
from tests.deploy.processes import EstateProcess, estate_env, free_port, running_estate

HEALTHZ_COUNT = re.compile(
    r'^estate_api_requests_total\{method="GET",route="/healthz",status="200"\} (\S+)$', re.M
)
HEALTHZ_TIMED = re.compile(
    r'^estate_api_request_seconds_count\{method="GET",route="/healthz"\} (\S+)$', re.M
)
BATCH = 20
MOST_REQUESTS = 400


def _wait_until_serving(base: str, server: EstateProcess) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.exited():
            pytest.fail(f"estate serve exited early:\n{server.output()}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    pytest.fail(f"estate serve did not become ready within 60s:\n{server.output()}")


def _answered_by(log_path: Path, path: str) -> set[int]:
    """The process ids that wrote an access log line for requests to this path."""
    processes = set()
    for text in log_path.read_text(errors="replace").splitlines():
        if text.startswith("{"):
            line = json.loads(text)
            if line["logger"] == "uvicorn.access" and f"GET {path} " in line["message"]:
                processes.add(line["process"])
    return processes


def _get_healthz(base: str) -> None:
    # A new connection each time, so the kernel hands requests to either worker.
    assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200


def test_request_counter_sums_over_workers(pg_context: Context, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = estate_env(
        ESTATE_PROFILE="test",
        ESTATE_DATA_DIR=str(tmp_path),
        ESTATE_DATABASE_URL=pg_context.settings.database_url,
        ESTATE_LOG_FORMAT="json",
    )
    metrics_parent = tmp_path / "metrics"
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_parent)
    log_path = tmp_path / "serve.log"
    args = ["serve", "--port", str(port), "--workers", "2"]
    with running_estate(args, env, log_path) as server:
        _wait_until_serving(base, server)
        started_in = [p.name for p in metrics_parent.iterdir()]
        sent = 0
        with ThreadPoolExecutor(max_workers=4) as pool:
            # Until both workers have answered some, so the sum must come from two processes.
            while sent < MOST_REQUESTS and len(_answered_by(log_path, "/healthz")) < 2:
                list(pool.map(lambda _: _get_healthz(base), range(BATCH)))
                sent += BATCH
                time.sleep(0.2)  # the access log reaches the file a moment later
        scraped: list[str] = []
        while len(scraped) < 60 and (
            len(scraped) < 4 or len(_answered_by(log_path, "/metrics")) < 2
        ):
            scraped.append(httpx.get(f"{base}/metrics", timeout=10).text)
            time.sleep(0.05)
        healthz_by = _answered_by(log_path, "/healthz")
        metrics_by = _answered_by(log_path, "/metrics")
    assert len(healthz_by) == 2, f"one worker answered all {sent} requests:\n{server.output()}"
    assert len(metrics_by) == 2, f"one worker answered all {len(scraped)} scrapes"
    for text in scraped:
        counts = HEALTHZ_COUNT.findall(text)
        assert counts == [f"{sent:.1f}"], f"expected one total of {sent}, got {counts}:\n{text}"
        assert HEALTHZ_TIMED.findall(text) == [f"{sent:.1f}"], "latency observed once each"
    assert len(started_in) == 1, "each start collects metrics in a fresh directory of its own"
    assert not any(metrics_parent.iterdir()), "metric files are removed when serve stops"
