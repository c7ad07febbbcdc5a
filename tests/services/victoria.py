"""A real VictoriaMetrics for tests: started on a free port, stoppable for outage tests.

Flags: `-search.latencyOffset=0s` so queries see points at once, `-retentionPeriod=100y` so
any test timestamp is kept, and `-dedup.minScrapeInterval=1ms` so a report written twice
(broker redelivery) is stored once, as in production.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

VICTORIA_BIN = os.environ.get("ESTATE_TEST_VICTORIA_BIN", "/usr/bin/victoria-metrics")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class VictoriaServer:
    """One victoria-metrics process with its own data directory; start() and stop() repeatably."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> None:
        if not Path(VICTORIA_BIN).exists():
            pytest.fail(f"{VICTORIA_BIN} is missing: apt-get install victoria-metrics")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir / "victoria.log", "ab")  # noqa: SIM115 - lives with the process
        self.process = subprocess.Popen(
            [
                VICTORIA_BIN,
                f"-storageDataPath={self.data_dir / 'data'}",
                f"-httpListenAddr=127.0.0.1:{self.port}",
                "-search.latencyOffset=0s",
                "-retentionPeriod=100y",
                "-dedup.minScrapeInterval=1ms",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        tail = (self.data_dir / "victoria.log").read_text(errors="replace")[-2000:]
        self.stop()
        pytest.fail(f"VictoriaMetrics did not become healthy on {self.url}:\n{tail}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None

    def _gauges(self) -> dict[str, float]:
        response = httpx.get(f"{self.url}/metrics", timeout=10)
        response.raise_for_status()
        wanted = ("vm_rows_added_to_storage_total", "vm_pending_rows{")
        values = {}
        for line in response.text.splitlines():
            if line.startswith(wanted):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def rows_added(self) -> int:
        """Samples stored since start; take it before writing, then `wait_ingested(before + n)`."""
        return int(self._gauges().get("vm_rows_added_to_storage_total", 0))

    def wait_ingested(self, rows: int, timeout_s: float = 20.0) -> None:
        """Wait until `rows` samples are stored and indexed, so exports show them.

        Exporting a series before it is indexed caches the miss for a while, so tests wait
        here first instead of polling the export.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            gauges = self._gauges()
            pending = sum(v for k, v in gauges.items() if k.startswith("vm_pending_rows"))
            if gauges.get("vm_rows_added_to_storage_total", 0) >= rows and pending == 0:
                return
            time.sleep(0.2)
        pytest.fail(f"VictoriaMetrics did not store {rows} samples within {timeout_s}s")

    def settle(self, quiet_s: float = 1.5, timeout_s: float = 30.0) -> None:
        """Wait until no samples have arrived for `quiet_s` and all are indexed."""
        deadline = time.monotonic() + timeout_s
        seen = -1
        while time.monotonic() < deadline:
            now = self.rows_added()
            if now == seen:
                self.wait_ingested(now)
                return
            seen = now
            time.sleep(quiet_s)
        pytest.fail(f"VictoriaMetrics kept receiving samples for {timeout_s}s")

    def export(self, match: str) -> list[dict[str, Any]]:
        """Raw samples of every series matching a selector (no query latency applies)."""
        response = httpx.post(f"{self.url}/api/v1/export", data={"match[]": match}, timeout=30)
        response.raise_for_status()
        return [orjson.loads(line) for line in response.content.splitlines() if line.strip()]

    def sample_count(self, match: str) -> int:
        return sum(len(series["timestamps"]) for series in self.export(match))


@pytest.fixture(scope="session")
def victoria_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaServer]:
    """The session's VictoriaMetrics (shared: stop it only on a server of your own)."""
    server = VictoriaServer(tmp_path_factory.mktemp("victoria"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def victoria(victoria_server: VictoriaServer) -> str:
    """Base URL of the session's VictoriaMetrics, e.g. http://127.0.0.1:41234."""
    return victoria_server.url


@pytest.fixture
def own_victoria(tmp_path: Path) -> Iterator[VictoriaServer]:
    """A VictoriaMetrics for this test alone, which it may stop and start."""
    server = VictoriaServer(tmp_path / "victoria")
    server.start()
    yield server
    server.stop()
