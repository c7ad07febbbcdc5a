"""A whole control plane on real services: PostgreSQL, Mosquitto (dynamic security), the API
server, ingest, and real agents started as `estate agent` processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from prometheus_client import CollectorRegistry

from fleet.auth.service import create_user, issue_token
from fleet.context import Context
from fleet.db import transaction
from fleet.ingest.metrics import IngestMetrics
from fleet.ingest.pipeline import IngestPipeline, PipelineOptions
from tests.services.api_server import running_api
from tests.services.postgres import migrated_context

if TYPE_CHECKING:
    from tests.services.mosquitto import DynsecBroker


@dataclass
class ControlPlane:
    ctx: Context
    base_url: str
    admin_token: str
    broker: DynsecBroker
    tmp: Path

    def api(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token or self.admin_token}"},
            timeout=10,
        )

    def enrolment_token(self, prison: str = "MDI", kind: str = "laptop") -> str:
        with self.api() as api:
            resp = api.post("/api/v1/enrolments", json={"prison_code": prison, "kind": kind})
            resp.raise_for_status()
            return str(resp.json()["tokens"][0])

    def start_agent(
        self, name: str, token: str, *, interval: float = 0.5, serial: str | None = None
    ) -> AgentProcess:
        state_dir = self.tmp / f"agent-{name}"
        cmd = [
            str(Path(sys.executable).parent / "estate"),
            "agent",
            "--enrol",
            token,
            "--server",
            self.base_url,
            "--state-dir",
            str(state_dir),
            "--serial",
            serial or f"SER-{name}",
            "--interval",
            str(interval),
            "--log-level",
            "info",
        ]
        log = open(self.tmp / f"agent-{name}.log", "wb")  # noqa: SIM115 - closed by AgentProcess
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        return AgentProcess(proc, state_dir, log)


@dataclass
class AgentProcess:
    proc: subprocess.Popen[bytes]
    state_dir: Path
    log: Any

    def identity(self, timeout_s: float = 20) -> dict[str, Any]:
        path = self.state_dir / "identity.json"
        wait_for(lambda: path.exists() or self.proc.poll() is not None, timeout_s, "identity")
        assert path.exists(), f"agent exited {self.proc.returncode}: {self.output()}"
        return dict(json.loads(path.read_text()))

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def wait_for(check: Callable[[], Any], timeout_s: float, what: str, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@contextmanager
def control_plane(
    pg_url: str,
    broker: DynsecBroker,
    tmp: Path,
    *,
    username: str = "e2e-admin",
    ingest_id: str = "e2e-ingest",
    session_expiry_s: int = 600,
) -> Iterator[ControlPlane]:
    """PostgreSQL, ingest and the API; commands go out as the estate-control login."""
    ctx = migrated_context(
        pg_url,
        data_dir=tmp,
        mqtt_url=broker.url_for(*broker.ingest),
        mqtt_control_url=broker.url_for(*broker.control),
        mqtt_public_url=f"mqtt://127.0.0.1:{broker.port}",
        mqtt_credentials="dynsec",
        mqtt_admin_username=broker.admin[0],
        mqtt_admin_password=broker.admin[1],
        sweep_interval_s=1,
        offline_after_s=30,
        # A group of its own: a session parked by an earlier test on this broker must not take
        # a share of this test's reports.
        mqtt_shared_group=f"{ingest_id}-{uuid.uuid4().hex[:8]}",
    )
    with transaction(ctx.sessions) as session:
        admin = create_user(session=session, username=username, role="estate-admin")
        token = issue_token(session=session, user=admin)
    pipeline = IngestPipeline(
        ctx,
        PipelineOptions(client_id=f"{ingest_id}-{os.getpid()}", session_expiry_s=session_expiry_s),
        metrics=IngestMetrics(CollectorRegistry()),
    )
    thread = threading.Thread(target=pipeline.run, name="ingest", daemon=True)
    thread.start()
    assert pipeline.wait_ready(20), "ingest did not subscribe"
    try:
        with running_api(ctx.settings) as base:
            yield ControlPlane(ctx, base, token, broker, tmp)
    finally:
        pipeline.stop()
        thread.join(timeout=20)
        ctx.close()
