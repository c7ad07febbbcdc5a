"""A real agent cut off from the broker: it buffers on disk and replays in order once back.

Ten minutes of a device's life without real ten minutes: at the design's 30 s report interval,
ten minutes is 20 reports. The agent here reports every 0.25 s (its own --interval setting), and
the network stays cut until its on-disk buffer holds at least those 20 reports, so the replay
after the cut-off carries exactly what a ten-minute outage would leave behind, in about five
seconds of wall time. The link is a TCP relay the test cuts: the broker sees the connection
drop (the agent's Last Will fires) and the agent sees its socket close, as with a lost network.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt

from agents.store import DATABASE_FILE
from fleet.auth.service import create_user, issue_token
from fleet.bench.child import IngestChild
from fleet.broker.urls import make_client
from fleet.db import transaction
from tests.chaos.conftest import ChaosBroker, chaos_context, ingest_child, run_id
from tests.chaos.ledger import Ledger, Report, ReportStream, assert_exact
from tests.chaos.proxy import CuttableLink
from tests.e2e.harness import ControlPlane
from tests.ingest.conftest import wait_for
from tests.services.api_server import running_api
from tests.services.victoria import VictoriaServer

REPORT_INTERVAL_S = 30  # the design's interval, which the cut-off length stands for
CUT_OFF_S = 600
BUFFERED_DURING_CUT = CUT_OFF_S // REPORT_INTERVAL_S  # 20 reports
# Reports from a made-up device show that ingest is subscribed before the agent starts.
PROBE_DEVICE = "MDI-PROBE-000000"
HEALTH_RECEIVED = 'estate_ingest_messages_received_total{channel="health"}'


class HealthWatcher:
    """Every health report the broker delivers, in arrival order (a plain, unshared reader)."""

    def __init__(self, broker: ChaosBroker) -> None:
        self.arrivals: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.client = make_client(
            broker.address_for(*broker.ingest), f"watch-{uuid.uuid4().hex[:8]}"
        )
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.subscribe("estate/v1/dev/+/health", qos=1)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.arrivals.append(orjson.loads(message.payload) | {"topic": message.topic})

    def seqs(self) -> list[int]:
        with self._lock:
            return [doc["seq"] for doc in self.arrivals]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _outbox(state_dir: Path) -> list[int]:
    """Seqs waiting in the agent's on-disk buffer (read-only; the agent keeps writing)."""
    path = state_dir / DATABASE_FILE
    if not path.exists():
        return []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
        return [row[0] for row in conn.execute("SELECT seq FROM outbox ORDER BY id")]


def _wait_until_ingest_listens(ingest: IngestChild, broker: ChaosBroker) -> None:
    """Ingest subscribes a moment after it starts; a report sent before then reaches only the
    watcher, so the agent starts once ingest has received a probe."""
    probe = ReportStream(broker.publisher_address, [PROBE_DEVICE], 1, rate=1)
    try:

        def _received_probe() -> bool:
            probe.publish(Report(PROBE_DEVICE, 1, probe.ts(1)))
            # No samples yet means ingest has not started serving its metrics: not ready.
            samples = ingest.metrics()
            return samples.get(HEALTH_RECEIVED, 0.0) >= 1

        wait_for(_received_probe, 30, "ingest to subscribe")
    finally:
        probe.close()


def test_agent_cut_off_for_ten_minutes_of_reports_replays_them_in_order_once(
    chaos_broker: ChaosBroker, pg_url: str, victoria_server: VictoriaServer, tmp_path: Path
) -> None:
    link = CuttableLink(chaos_broker.port)
    ctx = chaos_context(
        pg_url,
        chaos_broker,
        victoria_server.url,
        tmp_path,
        mqtt_public_url=f"mqtt://127.0.0.1:{link.port}",  # what enrolment hands the agent
        mqtt_control_url=chaos_broker.url_for(*chaos_broker.control),
        mqtt_credentials="dynsec",
        mqtt_admin_username=chaos_broker.admin.username,
        mqtt_admin_password=chaos_broker.admin.password,
    )
    with transaction(ctx.sessions) as session:
        admin = create_user(session=session, username="chaos-admin", role="estate-admin")
        token = issue_token(session=session, user=admin)
    watcher = HealthWatcher(chaos_broker)
    try:
        with (
            ingest_child(ctx.settings, tmp_path, run_id()) as ingest,
            running_api(ctx.settings) as base,
        ):
            _wait_until_ingest_listens(ingest, chaos_broker)
            plane = ControlPlane(ctx, base, token, chaos_broker, tmp_path)
            agent = plane.start_agent("cut", plane.enrolment_token(), interval=0.25)
            try:
                device = agent.identity()["device_id"]
                wait_for(lambda: len(watcher.seqs()) >= 5, 30, "the agent's first reports")
                link.cut()
                buffered = wait_for(
                    lambda: len(b := _outbox(agent.state_dir)) >= BUFFERED_DURING_CUT and b,
                    30,
                    f"{BUFFERED_DURING_CUT} reports buffered while cut off",
                )
                link.restore()
                wait_for(
                    lambda: watcher.seqs() and max(watcher.seqs()) > max(buffered) + 2,
                    60,
                    "the buffered reports replayed and new ones flowing",
                )
            finally:
                agent.stop()
            left = _outbox(agent.state_dir)
            arrivals = [doc for doc in watcher.arrivals if f"/{device}/" in doc["topic"]]
            seqs = [doc["seq"] for doc in arrivals]
            # In order: a resend of an unacknowledged report may repeat it, never reorder.
            assert seqs == sorted(seqs), seqs
            assert set(seqs) | set(left) == set(range(seqs[0], max(seqs + left) + 1))
            assert set(buffered) <= set(seqs), "every report buffered during the cut arrived"
            assert all(doc["metrics"]["buffer_dropped"] == 0 for doc in arrivals)
            ledger = Ledger()
            for doc in arrivals:
                key = (device, doc["seq"])
                ledger.reports[key] = Report(device, doc["seq"], doc["ts"])
                ledger.acked.add(key)
            # buffer_dropped is in every report, whatever the machine can measure.
            assert_exact(ctx, victoria_server, ledger, [device], series="buffer_dropped")
    finally:
        watcher.close()
        link.close()
        ctx.close()
