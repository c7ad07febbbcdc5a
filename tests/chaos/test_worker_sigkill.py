"""A Celery pool process killed with SIGKILL in the middle of an acks_late task: the task is
delivered again, completes once, and nothing is left running or unacknowledged."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import psutil
import pytest
import redis
from sqlalchemy import func, select

from fleet.context import Context
from fleet.db import transaction, utcnow
from fleet.devices.models import DeviceEvent, DeviceState
from fleet.settings import Settings
from fleet.tasks.app import make_celery
from fleet.tasks.devices import SWEEP_SILENT
from tests.chaos.conftest import device_state_locked
from tests.deploy.processes import estate_env, free_port, running_estate
from tests.ingest.conftest import wait_for
from tests.tasks.devices import add_reporting_device

REDIS_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture
def redis_queue() -> Iterator[tuple[redis.Redis, str]]:
    """A queue of this test's own on the shared Redis, removed afterwards."""
    name = f"estate-chaos-{uuid.uuid4().hex[:10]}"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: {exc}")
    yield client, name
    client.delete(name, f"_kombu.binding.{name}")
    client.close()


def _blocked_backends(ctx: Context) -> set[int]:
    """PostgreSQL backends of this database waiting on a lock."""
    with ctx.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT pid FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).all()
    return {row[0] for row in rows}


def _unacked_mention(client: redis.Redis, task_id: str) -> bool:
    """Whether Redis still holds a delivery of the task as unacknowledged."""
    return any(task_id.encode() in value for value in client.hvals("unacked"))


def test_pool_process_killed_mid_task_redelivers_and_completes_once(
    pg_context: Context, redis_queue: tuple[redis.Redis, str], tmp_path: Path
) -> None:
    client, queue = redis_queue
    silent = [
        add_reporting_device(pg_context, last_seen=utcnow() - timedelta(hours=2)) for _ in "abc"
    ]
    sender = make_celery(
        Settings(
            profile="test",
            database_url=pg_context.settings.database_url,
            celery_broker_url=REDIS_URL,
            celery_result_backend=REDIS_URL,
        )
    )
    metrics_port = free_port()
    env = estate_env(
        ESTATE_PROFILE="test",
        ESTATE_DATA_DIR=str(tmp_path),
        ESTATE_DATABASE_URL=pg_context.settings.database_url,
        ESTATE_CELERY_BROKER_URL=REDIS_URL,
        ESTATE_CELERY_RESULT_BACKEND=REDIS_URL,
    )
    args = ["worker", "--concurrency", "1", "--queues", queue, "--loglevel", "info"]
    args += ["--metrics-port", str(metrics_port), "--hostname", f"{queue}@%h"]
    try:
        with running_estate(args, env, tmp_path / "worker.log") as worker:
            with device_state_locked(pg_context):
                result = sender.tasks[SWEEP_SILENT].apply_async(queue=queue)
                first = wait_for(
                    lambda: _blocked_backends(pg_context), 60, "the sweep to block mid-task"
                )
                (pool,) = psutil.Process(worker.process.pid).children()
                pool.send_signal(signal.SIGKILL)
                pool.wait(10)
                # Delivered again to the replacement pool process, which blocks in turn.
                second = wait_for(
                    lambda: _blocked_backends(pg_context) - first,
                    60,
                    "the task to be delivered again after the kill",
                )
                assert second
            try:
                marked = result.get(timeout=30)
            except Exception as exc:
                pytest.fail(f"the redelivered sweep did not complete ({exc!r}):\n{worker.output()}")
            assert marked == len(silent)
            assert result.state == "SUCCESS"

            def _idle() -> str:
                text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
                return text if "estate_worker_active_tasks 0.0" in text else ""

            metrics = wait_for(_idle, 15, "the worker to report nothing running")
            assert "estate_worker_reserved_tasks 0.0" in metrics
            assert not _unacked_mention(client, result.id), "a delivery is still unacknowledged"
            assert client.llen(queue) == 0
            result.forget()
    finally:
        sender.close()
    # Done once: one silent event per device, every device now offline.
    with transaction(pg_context.sessions) as session:
        events = session.execute(
            select(DeviceEvent.device_id, func.count())
            .where(DeviceEvent.kind == "silent")
            .group_by(DeviceEvent.device_id)
        ).all()
        online = session.scalars(
            select(DeviceState.online).where(DeviceState.device_id.in_(silent))
        )
        assert sorted(events) == sorted((d, 1) for d in silent)
        assert not any(online)
