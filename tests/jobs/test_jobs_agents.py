"""Jobs run by the real runner through the MQTT gateway against `estate agent` processes."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from agents.config import AppliedConfig
from fleet.automation.desired import device_drift
from fleet.context import Context
from fleet.db import transaction, utcnow
from fleet.devices.models import Device
from fleet.jobs import lifecycle, runner
from fleet.jobs.inventory import mqtt_inventory
from fleet.jobs.models import Job, JobStage
from fleet.jobs.schemas import Rollout, Selector
from fleet.jobs.service import PLAYBOOKS_DIR
from tests.automation.support import estate_with_agents
from tests.e2e.harness import wait_for
from tests.jobs.support import (
    TEST_PLAYBOOKS,
    job_and_hosts,
    launch,
    make_template,
    sleepers,
    wait_for_event,
)

if TYPE_CHECKING:
    from tests.services.mosquitto import DynsecBroker


def _agents_inventory(session: Session, devices: Sequence[Device]) -> dict[str, Any]:
    """The real MQTT inventory; these agents run on this machine, whose python3 runs modules."""
    inventory = mqtt_inventory(session, devices)
    for host in inventory["all"]["hosts"].values():
        host["ansible_python_interpreter"] = "/usr/bin/python3"
    return inventory


def _launch(ctx: Context, template: int, **body: Any) -> int:
    return launch(ctx, template, inventory_builder=_agents_inventory, **body)


def _drive(ctx: Context, job_id: int) -> str:
    return runner.drive(ctx, job_id, root=TEST_PLAYBOOKS)


def test_jobs_over_mqtt_report_failures_pause_a_rollout_and_cancel_remote_work(
    pg_url: str, dynsec_broker: DynsecBroker, tmp_path: Path
) -> None:
    with estate_with_agents(pg_url, dynsec_broker, tmp_path, 3) as estate:
        ctx = estate.plane.ctx
        devices = sorted(estate.agents)
        selector = Selector(device_ids=devices)

        # A failing task is reported as failed for that device only; the others changed files.
        template = make_template(
            ctx, playbook="remote.yml", selector=selector, variables={"fail_hosts": devices[:1]}
        )
        job_id = _launch(ctx, template)
        assert _drive(ctx, job_id) == "failed"
        job, hosts = job_and_hosts(ctx, job_id)
        assert {d: hosts[d].status for d in devices} == {
            devices[0]: "failed",
            devices[1]: "ok",
            devices[2]: "ok",
        }
        for device_id in devices:
            assert (estate.sandbox(device_id) / "job-marker").exists()
        assert len(job.inventory_sha256) == 64
        assert set(job.inventory["all"]["hosts"]) == set(devices)

        # The shipped diagnostics playbook fetches each device's log into the job's artifacts.
        for device_id in devices:
            (estate.sandbox(device_id) / "agent.log").write_text(f"log of {device_id}\n")
        diagnostics = make_template(
            ctx,
            name="diagnostics",
            playbook="collect-diagnostics.yml",
            selector=selector,
            variables={"log_files": ["~/agent.log"]},
            root=PLAYBOOKS_DIR,
        )
        diagnostics_id = _launch(ctx, diagnostics, root=PLAYBOOKS_DIR)
        assert runner.drive(ctx, diagnostics_id) == "successful"
        with estate.plane.api() as api:
            listed = api.get(f"/api/v1/jobs/{diagnostics_id}/artifacts").json()["items"]
            assert [a["path"] for a in listed] == [f"{d}/agent.log" for d in devices]
            fetched = api.get(f"/api/v1/jobs/{diagnostics_id}/artifacts/{devices[1]}/agent.log")
            assert fetched.text == f"log of {devices[1]}\n"
            escape = api.get(f"/api/v1/jobs/{diagnostics_id}/artifacts/..%2F..%2Festate.db")
            assert escape.status_code == 404

        # A staged rollout pauses at its threshold when the canary fails.
        staged = make_template(
            ctx,
            name="staged",
            playbook="remote.yml",
            selector=selector,
            rollout=Rollout(canary=1, failure_threshold_pct=10),
        )
        staged_id = _launch(ctx, staged)
        with transaction(ctx.sessions) as session:
            canary = session.scalars(
                select(JobStage.device_ids).where(
                    JobStage.job_id == staged_id, JobStage.position == 0
                )
            ).one()
            row = session.get(Job, staged_id)
            assert row is not None
            row.variables = {"fail_hosts": canary}
        assert _drive(ctx, staged_id) == "paused"
        job, hosts = job_and_hosts(ctx, staged_id)
        assert "above the 10% threshold" in job.explanation
        assert sorted(h.status for h in hosts.values()) == ["failed", "pending", "pending"]

        # Cancelling stops the remote commands: the agents kill their process groups.
        slow = make_template(
            ctx, name="slow", playbook="remote.yml", selector=selector, variables={"sleep_s": 97}
        )
        slow_id = _launch(ctx, slow)
        outcome: dict[str, str] = {}
        worker = threading.Thread(target=lambda: outcome.update(status=_drive(ctx, slow_id)))
        worker.start()
        wait_for_event(ctx, slow_id, "playbook_on_task_start", within_s=60)
        deadline = time.monotonic() + 60
        while len(sleepers(97)) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(sleepers(97)) == 3, "every device started the remote sleep"
        with transaction(ctx.sessions) as session:
            row = session.get(Job, slow_id, with_for_update=True)
            assert row is not None
            lifecycle.cancel(session=session, actor="operator", job=row, now=utcnow())
        worker.join(60)
        assert outcome["status"] == "cancelled"
        deadline = time.monotonic() + 15
        while sleepers(97) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sleepers(97) == [], "the agents stopped the remote commands"


def test_a_shipped_playbook_launched_through_the_api_sets_the_agents_report_interval(
    pg_url: str, dynsec_broker: DynsecBroker, tmp_path: Path
) -> None:
    with estate_with_agents(pg_url, dynsec_broker, tmp_path, 2) as estate:
        devices = sorted(estate.agents)
        with estate.plane.api() as api:
            created = api.post(
                "/api/v1/job-templates",
                json={
                    "name": "Report interval",
                    "playbook": "agent-settings.yml",
                    "selector": {"device_ids": devices},
                    "variables": {"report_interval_s": 45},
                    "variables_schema": {
                        "type": "object",
                        "properties": {"report_interval_s": {"type": "integer", "minimum": 10}},
                    },
                },
            )
            assert created.status_code == 201, created.text
            launched = api.post("/api/v1/jobs", json={"template_id": created.json()["id"]})
            assert launched.status_code == 202, launched.text
            job_id = launched.json()["id"]
            job = wait_for(
                lambda: (
                    (j := api.get(f"/api/v1/jobs/{job_id}").json())["status"]
                    in ("successful", "failed")
                    and j
                ),
                90,
                "the job to end",
            )
            events = api.get(f"/api/v1/jobs/{job_id}/events").json()["items"]
        output = "\n".join(e["stdout"] for e in events)
        assert job["status"] == "successful", output
        assert job["hosts"] == {"ok": 2}
        assert output.count(": applied") == 2, output
        with transaction(estate.plane.ctx.sessions) as session:
            for device_id in devices:
                drift = device_drift(session=session, device_id=device_id)
                assert drift is not None
                assert drift.state == "in_sync"
        for device_id in devices:
            # What the agent itself recorded as applied, in its own state directory.
            applied = AppliedConfig.load(estate.agents[device_id].state_dir)
            assert applied.doc["health_interval_s"] == 45
