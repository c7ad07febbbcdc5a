"""The Celery app: task names, the silent-device sweep on PostgreSQL, and the worker commands."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from fleet.cli import main
from fleet.context import Context
from fleet.db import transaction, utcnow
from fleet.devices.models import DeviceEvent, DeviceState
from fleet.rollout.tasks import SNAPSHOT_DAILY
from fleet.settings import Settings
from fleet.tasks.app import make_celery
from fleet.tasks.devices import SWEEP_SILENT
from tests.tasks.devices import add_reporting_device


def test_tasks_are_registered_under_explicit_names() -> None:
    app = make_celery(Settings(profile="test", sweep_interval_s=45))
    ours = sorted(name for name in app.tasks if not name.startswith("celery."))
    assert ours == sorted(
        [
            SWEEP_SILENT,
            SNAPSHOT_DAILY,
            "estate.commands.expire",
            "estate.jobs.run",
            "estate.jobs.sweep",
            "estate.alerts.evaluate",
            "estate.alerts.notify",
            "estate.faults.check_sla",
            "estate.faults.raise_from_fleet",
        ]
    )
    on_demand = {"estate.jobs.run"}  # sent when a job is launched or its bake time ends
    for name in set(ours) - on_demand:
        assert name in app.conf.beat_schedule, f"{name} is registered but never scheduled"
    sweep = app.tasks[SWEEP_SILENT]
    assert sweep.acks_late, "the sweep is idempotent, so it is acknowledged after it runs"
    assert sweep.reject_on_worker_lost
    entry = app.conf.beat_schedule[SWEEP_SILENT]
    assert entry["task"] == SWEEP_SILENT
    assert entry["schedule"] == timedelta(seconds=45)
    assert entry["options"]["expires"] == 45


def test_memory_broker_runs_tasks_in_process_and_redis_does_not() -> None:
    assert make_celery(Settings(profile="test")).eager
    redis = make_celery(Settings(profile="test", celery_broker_url="redis://127.0.0.1:6379/15"))
    assert not redis.eager
    assert redis.conf.broker_url == "redis://127.0.0.1:6379/15"


def test_sweep_marks_a_silent_device_offline_on_postgresql(pg_context: Context) -> None:
    now = utcnow()
    silent = add_reporting_device(pg_context, last_seen=now - timedelta(hours=1))
    fresh = add_reporting_device(pg_context, last_seen=now - timedelta(seconds=5))
    # The app builds its own Context from settings, as a worker process does.
    app = make_celery(pg_context.settings)
    try:
        marked = app.tasks[SWEEP_SILENT].delay().get(timeout=10)
    finally:
        app.close_context()
    assert marked == 1
    with transaction(pg_context.sessions) as session:
        states = {s.device_id: s for s in session.scalars(select(DeviceState))}
        events = session.scalars(select(DeviceEvent).where(DeviceEvent.kind == "silent")).all()
    assert not states[silent].online
    assert states[silent].state == "lost"
    assert states[fresh].online
    assert [event.device_id for event in events] == [silent]
    assert events[0].detail["offline_after_s"] == pg_context.settings.offline_after_s


def test_sweep_failure_is_logged_with_the_task_and_raised(
    pg_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A database that exists but was never migrated: the sweep's UPDATE cannot run.
    app = make_celery(Settings(profile="test", database_url=pg_url, data_dir=tmp_path))
    try:
        with (
            caplog.at_level(logging.ERROR, logger="fleet.tasks.runtime"),
            pytest.raises(Exception, match="device_state"),
        ):
            app.tasks[SWEEP_SILENT].delay().get()
    finally:
        app.close_context()
    failures = [r for r in caplog.records if r.name == "fleet.tasks.runtime"]
    assert len(failures) == 1
    assert SWEEP_SILENT in failures[0].getMessage()
    assert "offline_after_s=180" in failures[0].getMessage()
    assert failures[0].exc_info is not None


@pytest.mark.parametrize(("command", "process"), [("worker", "worker"), ("beat", "beat scheduler")])
def test_worker_and_beat_refuse_the_in_process_broker(command: str, process: str) -> None:
    result = CliRunner().invoke(
        main, [command], env={"ESTATE_CELERY_BROKER_URL": "memory://", "ESTATE_PROFILE": "test"}
    )
    assert result.exit_code == 2
    assert f"a {process}" in result.output
    assert "needs a real broker: set ESTATE_CELERY_BROKER_URL=redis://" in result.output
