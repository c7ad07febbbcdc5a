"""A real `estate worker` process, fed through Redis, runs the sweep against PostgreSQL."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import redis

from fleet.context import Context
from fleet.db import transaction, utcnow
from fleet.devices.models import DeviceState
from fleet.settings import Settings
from fleet.tasks.app import EstateCelery, make_celery
from fleet.tasks.devices import SWEEP_SILENT
from tests.deploy.processes import estate_env, free_port, running_estate
from tests.tasks.devices import add_reporting_device

REDIS_URL = "redis://127.0.0.1:6379/15"
_IDLE = "estate_worker_active_tasks 0.0"
_ACCEPTED = f'estate_worker_tasks_accepted_total{{task="{SWEEP_SILENT}"}} 1.0'


def _metrics_once_counted(port: int, timeout_s: float = 10) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        if (_ACCEPTED in text and _IDLE in text) or time.monotonic() > deadline:
            return text
        time.sleep(0.1)


@pytest.fixture
def queue() -> Iterator[str]:
    """A queue of this test's own, so other workers on the same Redis never take its tasks."""
    name = f"estate-test-{uuid.uuid4().hex[:10]}"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: {exc}")
    yield name
    client.delete(name, f"_kombu.binding.{name}", f"_kombu.binding_permanent.{name}")
    client.close()


@pytest.fixture
def sender(pg_context: Context) -> Iterator[EstateCelery]:
    settings = Settings(
        profile="test",
        database_url=pg_context.settings.database_url,
        celery_broker_url=REDIS_URL,
        celery_result_backend=REDIS_URL,
    )
    app = make_celery(settings)
    yield app
    app.close()


def test_worker_process_runs_the_sweep_sent_through_redis(
    pg_context: Context, sender: EstateCelery, queue: str, tmp_path: Path
) -> None:
    silent = add_reporting_device(pg_context, last_seen=utcnow() - timedelta(hours=2))
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
    with running_estate(args, env, tmp_path / "worker.log") as worker:
        result = sender.tasks[SWEEP_SILENT].apply_async(queue=queue)
        try:
            marked = result.get(timeout=30)
        except Exception as exc:
            pytest.fail(f"the worker did not run the sweep ({exc!r}); its log:\n{worker.output()}")
        finally:
            result.forget()
        # The pool process stores the result; the main process settles the task a moment later.
        metrics = _metrics_once_counted(metrics_port)
        log = worker.output(lines=400)
    assert marked == 1
    with transaction(pg_context.sessions) as session:
        state = session.get(DeviceState, silent)
    assert state is not None
    assert not state.online
    assert _ACCEPTED in metrics, metrics
    assert _IDLE in metrics
    assert "has its own database pool" in log, "the pool process should build its own Context"
