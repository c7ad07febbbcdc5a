"""`estate ingest` as a child process of the benchmark, with its own metrics port."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil

from fleet.bench.stores import BenchError
from fleet.settings import Settings

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def client_id_for(run: str, index: int) -> str:
    return f"estate-bench-{run}-{index}"


class IngestChild:
    """`estate ingest` in its own process with the bench's settings and client id.

    Every child of one run joins the run's shared subscription group, so the broker splits
    the reports between them; each has its own client id and metrics port, and siblings need
    a `data_dir` each (it holds the TSDB spool).
    """

    def __init__(
        self,
        settings: Settings,
        run: str,
        data_dir: Path,
        topic_root: str,
        index: int = 0,
        taken_ports: frozenset[int] = frozenset(),
    ) -> None:
        self.client_id = client_id_for(run, index)
        self.metrics_port = free_port()
        while self.metrics_port in taken_ports:  # a sibling's port, not yet bound
            self.metrics_port = free_port()
        env = dict(os.environ)
        env.update(
            {
                "ESTATE_DATABASE_URL": settings.effective_database_url,
                "ESTATE_MQTT_URL": settings.mqtt_url,
                "ESTATE_TSDB_URL": settings.tsdb_url,
                "ESTATE_TSDB_TOKEN": settings.tsdb_token,
                "ESTATE_TSDB_ORG": settings.tsdb_org,
                "ESTATE_TSDB_BUCKET": settings.tsdb_bucket,
                "ESTATE_DATA_DIR": str(data_dir),
                "ESTATE_MQTT_SHARED_GROUP": f"estate-bench-{run}",
                "ESTATE_INGEST_BATCH_SIZE": str(settings.ingest_batch_size),
                "ESTATE_INGEST_BATCH_MS": str(settings.ingest_batch_ms),
            }
        )
        args = ["-c", "from fleet.cli import main; main()", "ingest"]
        args += ["--client-id", self.client_id, "--metrics-port", str(self.metrics_port)]
        args += ["--session-expiry", "600", "--log-level", "WARNING", "--topic-root", topic_root]
        self.process = subprocess.Popen([sys.executable, *args], env=env)

    def metrics(self) -> dict[str, float]:
        """The child's Prometheus samples, keyed by their full name with labels."""
        try:
            text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        except httpx.HTTPError as exc:
            log.warning("could not read ingest metrics: %s", exc)
            return {}
        samples = {}
        for line in text.splitlines():
            if line.startswith("estate_ingest_"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def received(self) -> int:
        """Health reports the broker has delivered to this process so far."""
        samples = self.metrics()
        if not samples:
            raise BenchError(f"ingest {self.client_id} stopped answering on its metrics port")
        return int(samples.get('estate_ingest_messages_received_total{channel="health"}', 0.0))

    def cpu_seconds(self) -> float:
        """User and system CPU the process (all its threads) has used so far."""
        times = psutil.Process(self.process.pid).cpu_times()
        return float(times.user + times.system)

    def rejected(self) -> dict[str, float]:
        """Refusals by reason."""
        prefix = "estate_ingest_messages_rejected_total{"
        return {
            name.split('"')[1]: value
            for name, value in self.metrics().items()
            if name.startswith(prefix)
        }

    def wait_spool_empty(self, progress: Progress, timeout_s: float = 120.0) -> None:
        """Give ingest time to replay lines it spooled while the TSDB was slow or away."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            samples = self.metrics()
            waiting = samples.get("estate_ingest_tsdb_spool_files", 0.0)
            if not waiting:
                return
            failures = samples.get("estate_ingest_tsdb_write_failures_total", 0.0)
            progress(f"{waiting:.0f} batches spooled for the TSDB ({failures:.0f} failed writes)")
            time.sleep(1.0)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            log.error("ingest did not stop within 30s of SIGTERM; killing it")
            self.process.kill()
            self.process.wait(10)
