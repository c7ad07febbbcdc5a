"""Remote actions on real services: API -> broker -> `estate agent` -> reply -> API."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from fleet.commands import service
from fleet.db import transaction, utcnow
from fleet.devices.models import Device
from fleet.signing import load_signing_key
from tests.commands.plane import ReplyTap, command_plane, wait_for

if TYPE_CHECKING:
    from tests.services.mosquitto import DynsecBroker


def test_actions_round_trip_through_a_real_agent_and_are_audited(
    pg_url: str, dynsec_broker: DynsecBroker, tmp_path: Path
) -> None:
    log_file = tmp_path / "agent-actions.log"
    with command_plane(pg_url, dynsec_broker, tmp_path) as cp:
        agent = cp.start_agent_with("actions", cp.enrolment_token(), "--log-file", str(log_file))
        try:
            device_id = agent.identity()["device_id"]
            wait_for(lambda: cp.device(device_id)["online"], 20, "device online")

            ping = cp.run(device_id, "ping")
            assert (ping["status"], ping["output"]) == ("done", "pong")
            assert ping["requested_by"] == "commands-admin"
            audit = cp.device(device_id)["audit"]
            assert any(
                e["action"] == "device.command.ping" and e["detail"]["command_id"] == ping["id"]
                for e in audit
            )

            diagnosis = cp.run(device_id, "collect_diagnostics", log_lines=5)
            assert diagnosis["status"] == "done", diagnosis
            facts = orjson.loads(diagnosis["output"])
            assert facts["boot"] == cp.device(device_id)["boot"]
            assert facts["seq"] > 0
            assert "memory_percent" in facts
            assert 0 < len(facts["log"]) <= 5

            reboot = cp.run(device_id, "reboot")
            assert reboot["status"] == "failed"
            assert reboot["output"] == "system actions are disabled on this agent"

            refresh = cp.run(device_id, "refresh_config")
            assert refresh["status"] == "done"

            boot = cp.device(device_id)["boot"]
            restart = cp.run(device_id, "restart_agent")
            assert restart["status"] == "done"
            wait_for(lambda: cp.device(device_id)["boot"] == boot + 1, 20, "the agent's new boot")
            assert agent.proc.poll() is None, "without system actions the process keeps running"

            with cp.api() as api:
                wanted = {"action": "ping", "filter": {"prison": ["MDI"], "kind": "laptop"}}
                preview = api.post("/api/v1/commands", json=wanted).json()
                assert preview["matched"] == 1
                queued = api.post(
                    "/api/v1/commands", json={**wanted, "confirmation": preview["confirmation"]}
                ).json()
                bulk_id = queued["items"][0]["id"]
                answered = wait_for(
                    lambda: (
                        (c := api.get(f"/api/v1/commands/{bulk_id}").json())["status"] == "done"
                        and c
                    ),
                    20,
                    "the bulk ping's reply",
                )
                assert answered["output"] == "pong"
                history = api.get(f"/api/v1/devices/{device_id}/commands").json()["items"]
            assert [c["action"] for c in history] == [
                "ping",
                "restart_agent",
                "refresh_config",
                "reboot",
                "collect_diagnostics",
                "ping",
            ]
        finally:
            agent.stop()


def test_expired_and_replayed_commands_are_rejected_by_the_agent_and_not_run(
    pg_url: str, dynsec_broker: DynsecBroker, tmp_path: Path
) -> None:
    with command_plane(pg_url, dynsec_broker, tmp_path) as cp:
        agent = cp.start_agent_with("refusals", cp.enrolment_token())
        try:
            device_id = agent.identity()["device_id"]
            wait_for(lambda: cp.device(device_id)["online"], 20, "device online")
            boot = cp.device(device_id)["boot"]
            key = load_signing_key(cp.ctx.settings)
            with transaction(cp.ctx.sessions) as session:
                device = session.get(Device, device_id)
                assert device is not None
                stale = service.queue_command(
                    session=session,
                    actor="commands-admin",
                    device=device,
                    action="restart_agent",
                    params={},
                    now=utcnow() - timedelta(minutes=10),
                    ttl_s=60,
                )
                expired_envelope = service.signed_envelope(stale, key)
                fresh = service.queue_command(
                    session=session,
                    actor="commands-admin",
                    device=device,
                    action="ping",
                    params={},
                    now=utcnow(),
                )
                ping_envelope = service.signed_envelope(fresh, key)
            tap = ReplyTap(dynsec_broker, device_id)
            try:
                tap.publish(expired_envelope)
                assert tap.reply_to(stale.id) == [
                    {"id": stale.id, "status": "rejected", "output": "expired"}
                ]
                tap.publish(ping_envelope)
                tap.publish(ping_envelope)
                first, second = tap.reply_to(fresh.id, count=2)
            finally:
                tap.close()
            assert first == {"id": fresh.id, "status": "done", "output": "pong"}
            assert second == {"id": fresh.id, "status": "rejected", "output": "replayed"}
            with cp.api() as api:
                recorded = wait_for(
                    lambda: (
                        (c := api.get(f"/api/v1/commands/{stale.id}").json())["status"]
                        == "rejected"
                        and c
                    ),
                    10,
                    "the rejection recorded",
                )
                assert recorded["output"] == "expired"
                # The replay does not overwrite the answer to the original.
                assert api.get(f"/api/v1/commands/{fresh.id}").json()["status"] == "done"
            assert cp.device(device_id)["boot"] == boot, "the expired restart must not have run"
        finally:
            agent.stop()


def test_system_actions_run_the_configured_commands_only_when_allowed(
    pg_url: str, dynsec_broker: DynsecBroker, tmp_path: Path
) -> None:
    marker = tmp_path / "rebooted"
    with command_plane(pg_url, dynsec_broker, tmp_path) as cp:
        agent = cp.start_agent_with(
            "system",
            cp.enrolment_token(),
            "--allow-system-actions",
            "--reboot-command",
            f"touch {marker}",
            "--lock-command",
            "false",
        )
        try:
            device_id = agent.identity()["device_id"]
            wait_for(lambda: cp.device(device_id)["online"], 20, "device online")
            assert cp.run(device_id, "reboot")["status"] == "done"
            assert marker.exists()
            lock = cp.run(device_id, "lock")
            assert lock["status"] == "failed"
            assert lock["output"] == "false exited 1"
            restart = cp.run(device_id, "restart_agent")
            assert restart["status"] == "done"
            assert wait_for(lambda: agent.proc.poll() is not None, 20, "the agent to exit")
            assert agent.proc.returncode == 75, agent.output()
        finally:
            agent.stop()
