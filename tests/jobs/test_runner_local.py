"""ansible-runner running real playbooks for jobs on PostgreSQL, with a local connection."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from fleet.audit.models import AuditEvent
from fleet.context import Context
from fleet.db import transaction, utcnow
from fleet.jobs import lifecycle, runner
from fleet.jobs.models import Job, JobEvent, JobStage
from fleet.jobs.schemas import Rollout
from tests.jobs.support import (
    TEST_PLAYBOOKS,
    job_and_hosts,
    kill_sleepers,
    launch,
    make_template,
    seed_devices,
    wait_for_event,
)


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    """Where test playbooks write a file per device (apart from the job artifacts)."""
    folder = tmp_path / "markers"
    folder.mkdir()
    return folder


def drive(ctx: Context, job_id: int, **kw: object) -> str:
    return runner.drive(
        ctx,
        job_id,
        root=TEST_PLAYBOOKS,
        gateway_factory=runner.no_gateway,
        **kw,  # type: ignore[arg-type]
    )


def test_a_failing_task_is_reported_as_failed_for_that_host_only(
    pg_context: Context, markers: Path
) -> None:
    ids = seed_devices(pg_context, {"MDI": 3})
    template = make_template(
        pg_context, variables={"marker_dir": str(markers), "fail_hosts": [ids[1]]}
    )
    job_id = launch(pg_context, template)

    assert drive(pg_context, job_id) == "failed"

    job, hosts = job_and_hosts(pg_context, job_id)
    assert {h: hosts[h].status for h in ids} == {ids[0]: "ok", ids[1]: "failed", ids[2]: "ok"}
    assert hosts[ids[1]].message == f"refused on {ids[1]}"
    assert hosts[ids[0]].changed == 1
    assert job.explanation == "1 of 3 devices failed or were unreachable"
    assert job.started_at is not None
    assert job.finished_at is not None
    assert sorted(p.name for p in markers.iterdir()) == ids  # the playbook really ran
    with transaction(pg_context.sessions) as session:
        events = list(session.scalars(select(JobEvent).where(JobEvent.job_id == job_id)))
    counters = [e.counter for e in sorted(events, key=lambda e: e.id)]
    assert counters == sorted(counters)
    assert counters[0] == 1
    failed = [e for e in events if e.failed]
    assert [(e.event, e.host) for e in failed] == [("runner_on_failed", ids[1])]
    assert any("PLAY RECAP" in e.stdout for e in events)


def test_environment_is_scrubbed_and_the_private_directory_is_private_then_removed(
    pg_context: Context, markers: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESTATE_SECRET_KEY", "control-plane-secret-value-123")
    monkeypatch.setenv("ESTATE_DATABASE_URL", pg_context.settings.database_url)
    monkeypatch.setenv("GRAFANA_API_TOKEN", "grafana-token-value")
    monkeypatch.setenv("INNOCENT_SETTING", "kept")
    ids = seed_devices(pg_context, {"MDI": 1})
    template = make_template(
        pg_context, playbook="environment.yml", variables={"marker_dir": str(markers)}
    )
    job_id = launch(pg_context, template)

    assert drive(pg_context, job_id) == "successful"

    env = (markers / f"{ids[0]}.env").read_text()
    assert "INNOCENT_SETTING=kept" in env
    for leaked in ("control-plane-secret-value-123", "grafana-token-value", "ESTATE_"):
        assert leaked not in env
    assert pg_context.settings.database_url not in env
    mode, private = (markers / f"{ids[0]}.dir").read_text().split(":", 1)
    assert mode == "700"
    assert f"estate-job-{job_id}-" in private
    assert not Path(private).exists(), "the private data directory is removed after the run"


def test_cancelling_a_running_job_stops_the_playbook(pg_context: Context) -> None:
    seed_devices(pg_context, {"MDI": 2})
    template = make_template(pg_context, playbook="slow.yml", variables={"seconds": 120})
    job_id = launch(pg_context, template)
    outcome: dict[str, str] = {}
    worker = threading.Thread(target=lambda: outcome.update(status=drive(pg_context, job_id)))
    started = time.monotonic()
    worker.start()
    wait_for_event(pg_context, job_id, "runner_on_start")

    with transaction(pg_context.sessions) as session:
        job = session.get(Job, job_id, with_for_update=True)
        assert job is not None
        assert job.status == "running"
        lifecycle.cancel(session=session, actor="operator", job=job, now=utcnow())
    worker.join(30)

    assert outcome["status"] == "cancelled", job_and_hosts(pg_context, job_id)[0].explanation
    assert time.monotonic() - started < 30, "cancelled long before the 120 s sleep ends"
    job, hosts = job_and_hosts(pg_context, job_id)
    assert job.status == "cancelled"
    assert {h.status for h in hosts.values()} == {"cancelled"}
    # Over the local connection the module's own child outlives ansible-playbook; on devices
    # the agent kills the command's process group (tests/jobs/test_jobs_agents.py).
    kill_sleepers(120)


def test_a_job_over_its_timeout_fails_and_says_so(pg_context: Context) -> None:
    seed_devices(pg_context, {"MDI": 1})
    template = make_template(
        pg_context, playbook="slow.yml", variables={"seconds": 90}, timeout_s=10
    )
    job_id = launch(pg_context, template)

    assert drive(pg_context, job_id) == "failed"
    kill_sleepers(90)  # the local connection's module child outlives ansible-playbook

    job, hosts = job_and_hosts(pg_context, job_id)
    assert job.explanation == "The run stopped after its 10 s timeout"
    assert [h.status for h in hosts.values()] == ["failed"]


def test_staged_rollout_pauses_at_its_failure_threshold_then_aborts(
    pg_context: Context, markers: Path
) -> None:
    ids = seed_devices(pg_context, {"MDI": 4, "LEI": 4})
    rollout = Rollout(canary=2, bake_s=600, wave_percent=[50, 100], failure_threshold_pct=20)
    template = make_template(pg_context, variables={"marker_dir": str(markers)}, rollout=rollout)
    job_id = launch(pg_context, template, selector={"prisons": ["MDI", "LEI"]})
    with transaction(pg_context.sessions) as session:
        stages = list(
            session.scalars(select(JobStage).where(JobStage.job_id == job_id).order_by("position"))
        )
        canary, wave1, wave2 = (list(s.device_ids) for s in stages)
    assert len(canary) == 2
    assert {d[:3] for d in canary} == {"LEI", "MDI"}  # spread over prisons
    assert (len(wave1), len(wave2)) == (3, 3)
    # Every device after the canary fails.
    with transaction(pg_context.sessions) as session:
        job = session.get(Job, job_id)
        assert job is not None
        job.variables = {"marker_dir": str(markers), "fail_hosts": wave1 + wave2}

    now = utcnow()
    assert drive(pg_context, job_id, clock=lambda: now) == "baking"
    with transaction(pg_context.sessions) as session:
        assert lifecycle.due_jobs(session=session, now=now + timedelta(seconds=599)) == []
        assert lifecycle.due_jobs(session=session, now=now + timedelta(seconds=600)) == [job_id]
        # Sent once: not again while a worker may still be about to take it.
        assert lifecycle.due_jobs(session=session, now=now + timedelta(seconds=601)) == []
    assert drive(pg_context, job_id, clock=lambda: now + timedelta(seconds=60)) == "baking"

    later = now + timedelta(seconds=601)
    assert drive(pg_context, job_id, clock=lambda: later) == "paused"

    job, hosts = job_and_hosts(pg_context, job_id)
    assert "3 of 5 devices failed or were unreachable (60%), above the 20% threshold" in (
        job.explanation
    )
    assert [hosts[d].status for d in wave2] == ["pending"] * 3, "the last wave never ran"
    assert sorted(p.name for p in markers.iterdir()) == sorted(canary + wave1)
    with transaction(pg_context.sessions) as session:
        paused = session.get(Job, job_id, with_for_update=True)
        assert paused is not None
        lifecycle.abort(session=session, actor="operator", job=paused, now=later)
    job, hosts = job_and_hosts(pg_context, job_id)
    assert job.status == "aborted"
    assert [hosts[d].status for d in wave2] == ["skipped"] * 3
    with transaction(pg_context.sessions) as session:
        actions = session.scalars(
            select(AuditEvent.action).where(
                AuditEvent.target_type == "job", AuditEvent.target_id == str(job_id)
            )
        ).all()
    assert actions == ["job.launch", "job.paused", "job.abort"]
    assert set(ids) == set(canary + wave1 + wave2)


def test_resume_runs_the_remaining_stages(pg_context: Context, markers: Path) -> None:
    seed_devices(pg_context, {"MDI": 4})
    rollout = Rollout(canary=1, failure_threshold_pct=0)
    template = make_template(pg_context, variables={"marker_dir": str(markers)}, rollout=rollout)
    job_id = launch(pg_context, template)
    with transaction(pg_context.sessions) as session:
        canary = session.scalars(
            select(JobStage.device_ids).where(JobStage.job_id == job_id, JobStage.position == 0)
        ).one()
        job = session.get(Job, job_id)
        assert job is not None
        job.variables = {"marker_dir": str(markers), "fail_hosts": canary}
    assert drive(pg_context, job_id) == "paused"

    with transaction(pg_context.sessions) as session:
        job = session.get(Job, job_id, with_for_update=True)
        assert job is not None
        lifecycle.resume(session=session, actor="operator", job=job, now=utcnow())
    assert drive(pg_context, job_id) == "failed"  # the canary's failure still counts

    job, hosts = job_and_hosts(pg_context, job_id)
    assert sorted(h.status for h in hosts.values()) == ["failed", "ok", "ok", "ok"]
    assert len(list(markers.iterdir())) == 4


def test_rerun_targets_only_the_failed_hosts(pg_context: Context, markers: Path) -> None:
    ids = seed_devices(pg_context, {"MDI": 3})
    template = make_template(
        pg_context, variables={"marker_dir": str(markers), "fail_hosts": ids[:2]}
    )
    job_id = launch(pg_context, template)
    drive(pg_context, job_id)
    with transaction(pg_context.sessions) as session:
        job = session.get(Job, job_id)
        assert job is not None
        child = lifecycle.rerun(
            session=session,
            actor="operator",
            job=job,
            which="failed",
            now=utcnow(),
            inventory_builder=_local,
        )
        child_id = child.id
    child_job, child_hosts = job_and_hosts(pg_context, child_id)
    assert sorted(child_hosts) == ids[:2]
    assert (child_job.parent_id, child_job.origin, child_job.status) == (
        job_id,
        "rerun_failed",
        "queued",
    )
    assert drive(pg_context, child_id) == "failed"


def test_unreachable_hosts_retry_when_their_device_comes_back(
    pg_context: Context, markers: Path
) -> None:
    ids = seed_devices(pg_context, {"MDI": 2}, online=False)
    template = make_template(pg_context, variables={"marker_dir": str(markers)})
    job_id = launch(pg_context, template, inventory_builder=_unreachable_first(ids[0]))

    assert drive(pg_context, job_id) == "failed"
    _, hosts = job_and_hosts(pg_context, job_id)
    assert (hosts[ids[0]].status, hosts[ids[1]].status) == ("unreachable", "ok")

    with transaction(pg_context.sessions) as session:
        parent = session.get(Job, job_id)
        assert parent is not None
        queued = lifecycle.retry_when_online(session=session, actor="op", job=parent, now=utcnow())
        assert queued == 1
        # Still offline: nothing starts.
        assert lifecycle.start_online_retries(session=session, now=utcnow()) == []
    _set_online(pg_context, ids[0])
    with transaction(pg_context.sessions) as session:
        started = lifecycle.start_online_retries(
            session=session, now=utcnow(), inventory_builder=_local
        )
        assert [j.origin for j in started] == ["retry_online"]
        retry_id = started[0].id
        # Once started, the same host is not retried again.
        assert lifecycle.start_online_retries(session=session, now=utcnow()) == []
    assert drive(pg_context, retry_id) == "successful"
    _, parent_hosts = job_and_hosts(pg_context, job_id)
    assert parent_hosts[ids[0]].retried_by_job_id == retry_id


def test_a_job_whose_worker_stopped_is_reaped_as_failed(pg_context: Context) -> None:
    seed_devices(pg_context, {"MDI": 1})
    job_id = launch(pg_context, make_template(pg_context))
    now = utcnow()
    with transaction(pg_context.sessions) as session:
        from fleet.jobs.execution import claim_next_stage

        assert claim_next_stage(session=session, job_id=job_id, worker="w:1", now=now)
    with transaction(pg_context.sessions) as session:
        assert lifecycle.reap_dead(session=session, now=now + timedelta(seconds=60)) == []
        assert lifecycle.reap_dead(session=session, now=now + timedelta(seconds=121)) == [job_id]
    job, hosts = job_and_hosts(pg_context, job_id)
    assert job.status == "failed"
    assert "(w:1) stopped responding" in job.explanation
    assert [h.status for h in hosts.values()] == ["failed"]


# --- helpers ---------------------------------------------------------------------------------


def _local(session: object, devices: object) -> dict[str, object]:
    from tests.jobs.support import local_inventory

    return local_inventory(session, devices)  # type: ignore[arg-type]


def _unreachable_first(device_id: str) -> object:
    """A local inventory where one device is behind a closed SSH port (unreachable at once)."""
    from tests.jobs.support import local_inventory

    def build(session: object, devices: object) -> dict[str, object]:
        inventory = local_inventory(session, devices)  # type: ignore[arg-type]
        inventory["all"]["hosts"][device_id] = {
            "ansible_connection": "ssh",
            "ansible_host": "127.0.0.1",
            "ansible_port": 9,
        }
        return inventory

    return build


def _set_online(ctx: Context, device_id: str) -> None:
    from fleet.devices.models import DeviceState

    with transaction(ctx.sessions) as session:
        state = session.get(DeviceState, device_id)
        assert state is not None
        state.online = True
