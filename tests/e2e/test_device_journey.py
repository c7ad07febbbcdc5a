"""A device's life on real services: enrol, report, go quiet, be revoked."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import paho.mqtt.client as mqtt
from sqlalchemy import select

from fleet.devices.models import HealthSample
from tests.e2e.harness import control_plane, wait_for

if TYPE_CHECKING:
    from tests.services.mosquitto import DynsecBroker


def _device(cp, device_id: str) -> dict:  # type: ignore[no-untyped-def]
    with cp.api() as api:
        resp = api.get(f"/api/v1/devices/{device_id}")
        resp.raise_for_status()
        return dict(resp.json())


def test_enrolled_agent_health_is_visible_in_the_api_within_two_seconds(
    pg_url: str, dynsec_broker: DynsecBroker, tmp_path: Path
) -> None:
    with control_plane(pg_url, dynsec_broker, tmp_path) as cp:
        agent = cp.start_agent("journey", cp.enrolment_token(), interval=0.5)
        try:
            device_id = agent.identity()["device_id"]
            detail = wait_for(
                lambda: (d := _device(cp, device_id)).get("metrics") and d,
                20,
                "first health report in the API",
            )
            # From the report's own timestamp to the API showing it: the pipeline's latency.
            seen = time.time()
            reported = datetime.fromisoformat(
                detail["last_report_ts"].replace("Z", "+00:00")
            ).timestamp()
            assert seen - reported < 2.0, f"health took {seen - reported:.2f} s to be visible"
            assert detail["online"] is True
            assert detail["lifecycle"] == "enrolled"
            assert "cpu" in detail["metrics"]
            first_seq = detail["seq"]
            later = wait_for(
                lambda: (d := _device(cp, device_id))["seq"] > first_seq + 2 and d,
                10,
                "later reports",
            )
            assert later["seq"] > first_seq
        finally:
            agent.stop()
        gone = wait_for(
            lambda: (d := _device(cp, device_id))["state"] == "offline" and d,
            10,
            "clean shutdown to show as offline",
        )
        assert gone["online"] is False


def test_revoked_device_is_disconnected_and_cannot_reconnect(
    pg_url: str, dynsec_broker: DynsecBroker, tmp_path: Path
) -> None:
    with control_plane(pg_url, dynsec_broker, tmp_path) as cp:
        agent = cp.start_agent("revoked", cp.enrolment_token(), interval=0.5)
        try:
            identity = agent.identity()
            device_id = identity["device_id"]
            wait_for(lambda: _device(cp, device_id)["online"], 20, "device online")
            with cp.api() as api:
                resp = api.post(
                    f"/api/v1/devices/{device_id}/revoke", json={"reason": "reported stolen"}
                )
            assert resp.status_code == 200, resp.text
            seq_at_revoke = _device(cp, device_id)["seq"]
            time.sleep(3)  # the agent keeps trying; nothing it sends may land
            after = _device(cp, device_id)
            assert after["lifecycle"] == "revoked"
            assert after["seq"] <= seq_at_revoke + 1  # at most one in flight
            # The broker itself refuses the saved credentials.
            client = mqtt.Client(
                mqtt.CallbackAPIVersion.VERSION2, client_id=device_id, protocol=mqtt.MQTTv311
            )
            client.username_pw_set(identity["mqtt"]["username"], identity["mqtt"]["password"])
            result: dict[str, object] = {}
            client.on_connect = lambda _c, _u, _f, rc, _p: result.setdefault("rc", rc)
            client.connect("127.0.0.1", dynsec_broker.port)
            client.loop_start()
            wait_for(lambda: "rc" in result, 10, "CONNACK")
            client.loop_stop()
            client.disconnect()
            assert result["rc"].is_failure  # type: ignore[attr-defined]
            assert any(e["action"] == "device.revoked" for e in after["audit"])
        finally:
            agent.stop()


def test_reports_buffered_during_a_30s_broker_outage_arrive_afterwards_in_order(
    pg_url: str, dynsec_broker: DynsecBroker, tmp_path: Path
) -> None:
    with control_plane(pg_url, dynsec_broker, tmp_path) as cp:
        agent = cp.start_agent("outage", cp.enrolment_token(), interval=0.5)
        try:
            device_id = agent.identity()["device_id"]
            wait_for(lambda: _device(cp, device_id)["online"], 20, "device online")
            dynsec_broker.stop()
            outage_start = time.time()
            time.sleep(30)
            outage_end = time.time()
            dynsec_broker.start()

            def samples() -> list[HealthSample]:
                with cp.ctx.sessions() as session:
                    return list(
                        session.scalars(
                            select(HealthSample)
                            .where(HealthSample.device_id == device_id)
                            .order_by(HealthSample.seq)
                        )
                    )

            during = lambda rows: [  # noqa: E731
                r for r in rows if outage_start < r.ts.timestamp() < outage_end - 1
            ]
            rows = wait_for(lambda: len(during(r := samples())) >= 50 and r, 60, "replay")
            seqs = [r.seq for r in rows]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a report is missing"
            stamps = [r.ts for r in rows]
            assert stamps == sorted(stamps), "reports replayed out of order"
            assert len(during(rows)) >= 50  # ~60 reports at 0.5 s over 30 s, original times
        finally:
            agent.stop()
