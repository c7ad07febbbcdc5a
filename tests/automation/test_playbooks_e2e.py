"""Real playbooks through ansible-runner, the job gateway, Mosquitto and `estate agent`s."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleet.automation.gateway import JobGateway
from tests.automation.support import estate_with_agents, inventory_for, run_playbook
from tests.e2e.harness import wait_for

if TYPE_CHECKING:
    from tests.services.mosquitto import DynsecBroker


def test_a_playbook_changes_files_fetches_logs_and_reports_a_failing_task(
    pg_url: str, dynsec_broker: DynsecBroker, tmp_path: Path
) -> None:
    with estate_with_agents(pg_url, dynsec_broker, tmp_path, 3) as estate:
        devices = sorted(estate.agents)
        failing = devices[0]
        for device_id in devices:
            (estate.sandbox(device_id) / "agent.log").write_text(f"log of {device_id}\n")
        plays = [
            {
                "hosts": "all",
                "gather_facts": False,
                "tasks": [
                    {
                        "name": "write motd",
                        "ansible.builtin.copy": {
                            "content": "Welcome {{ inventory_hostname }}\n",
                            "dest": "~/motd",
                            "mode": "0644",
                        },
                    },
                    {
                        "name": "collect log",
                        "ansible.builtin.fetch": {
                            "src": "~/agent.log",
                            "dest": str(tmp_path / "fetched"),
                        },
                    },
                    {
                        "name": "check flag",
                        "ansible.builtin.command": "test ! -e /nonexistent-{{ fail_on }}",
                        "vars": {"fail_on": ""},
                        "when": "inventory_hostname != '" + failing + "'",
                    },
                    {
                        "name": "fail here",
                        "ansible.builtin.command": "false",
                        "when": "inventory_hostname == '" + failing + "'",
                    },
                ],
            }
        ]
        with JobGateway(estate.plane.ctx.settings, job_id="t1") as gw:
            run = run_playbook(gw, tmp_path / "job", plays, inventory_for(devices))
        assert run.status == "failed", run.stdout
        for device_id in devices:
            motd = estate.sandbox(device_id) / "motd"
            assert motd.read_text() == f"Welcome {device_id}\n"
            assert oct(motd.stat().st_mode & 0o777) == "0o644"
            fetched = (
                tmp_path
                / "fetched"
                / device_id
                / str(estate.sandbox(device_id) / "agent.log").lstrip("/")
            )
            assert fetched.read_text() == f"log of {device_id}\n"
        failed = run.results("runner_on_failed")
        assert list(failed) == [failing]
        assert failed[failing] == ["fail here"]
        assert run.result_of(failing, "fail here")["rc"] == 1


def test_desired_configuration_is_applied_reported_and_drift_is_visible(
    pg_url: str, dynsec_broker: DynsecBroker, tmp_path: Path
) -> None:
    with estate_with_agents(pg_url, dynsec_broker, tmp_path, 3) as estate:
        devices = sorted(estate.agents)
        applying, going_offline, refused = devices
        apps = ["uk.gov.justice.content", "uk.gov.justice.phone"]

        def plays(kiosk: bool) -> list[dict[str, Any]]:
            doc = {
                "apps_allowed": apps,
                "kiosk": {"enabled": kiosk, "app": apps[0]},
                "health_interval_s": "{{ interval }}",
            }
            task = {"name": "allow apps", "estate_desired_config": {"doc": doc, "timeout": 30}}
            return [{"hosts": "all", "gather_facts": False, "tasks": [task]}]

        inventory = inventory_for(devices)
        for device_id in devices:
            interval = "not-a-number" if device_id == refused else 5
            inventory["all"]["hosts"][device_id]["interval"] = interval
        settings = estate.plane.ctx.settings
        with JobGateway(settings, job_id="desired") as gw:
            first = run_playbook(gw, tmp_path / "first", plays(True), inventory)
            again = run_playbook(gw, tmp_path / "again", plays(True), inventory)
        # Bad input is refused by the control plane with the agent's own reason; nothing stored.
        assert first.results("runner_on_failed") == {refused: ["allow apps"]}, first.stdout
        assert "health_interval_s must be" in first.result_of(refused, "allow apps")["msg"]
        for device_id in (applying, going_offline):
            res = first.result_of(device_id, "allow apps")
            assert (res["status"], res["version"], res["changed"]) == ("applied", 1, True)
            written = estate.agents[device_id].state_dir / "desired" / "apps_allowed.json"
            assert json.loads(written.read_text()) == apps
            assert again.result_of(device_id, "allow apps")["changed"] is False

        estate.agents[going_offline].stop()
        wait_for(lambda: not estate.plane.device(going_offline)["online"], 20, "offline")
        with JobGateway(settings, job_id="desired-2") as gw:
            second = run_playbook(gw, tmp_path / "second", plays(False), inventory)
        assert second.results("runner_on_unreachable") == {going_offline: ["allow apps"]}
        assert second.result_of(applying, "allow apps")["version"] == 2
        kiosk = estate.agents[applying].state_dir / "desired" / "kiosk.json"
        assert json.loads(kiosk.read_text())["enabled"] is False

        with estate.plane.api() as api:
            drifted = api.get("/api/v1/devices", params={"drift": "true"}).json()
            assert [d["id"] for d in drifted["items"]] == [going_offline]
            in_sync = api.get("/api/v1/devices", params={"drift": "false"}).json()
            assert sorted(d["id"] for d in in_sync["items"]) == [applying, refused]
            summary = api.get("/api/v1/desired-config/drift").json()
            assert summary["total"] == {"in_sync": 1, "pending": 1, "failed": 0}
            pending = api.get(f"/api/v1/devices/{going_offline}/desired-config").json()
            assert (pending["version"], pending["applied_version"]) == (2, 1)
            assert pending["drift"] == "pending"
            none = api.get(f"/api/v1/devices/{refused}/desired-config")
            assert none.status_code == 404
            audit = api.get(f"/api/v1/devices/{applying}").json()["audit"]
        assert any(
            e["action"] == "device.desired_config.set" and e["actor"] == "job:desired-2"
            for e in audit
        )
