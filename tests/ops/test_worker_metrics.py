"""A real `estate worker` (two pool processes) reports task run times, failures, queue depths
and JSON log lines carrying the task's id, through Redis db 15."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import redis
from celery.exceptions import TimeoutError as ResultTimeout
from prometheus_client import CollectorRegistry, generate_latest

from fleet.context import Context
from fleet.db import utcnow
from fleet.settings import Settings
from fleet.tasks.app import EstateCelery, make_celery
from fleet.tasks.devices import SWEEP_SILENT
from fleet.tasks.metrics import QueueDepthCollector
from tests.deploy.processes import estate_env, free_port, running_estate
from tests.tasks.devices import add_reporting_device

REDIS_URL = "redis://127.0.0.1:6379/15"
SWEEPS = 4


def _sample(text: str, name: str, labels: str = "") -> float | None:
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else None


@pytest.fixture
def queue() -> Iterator[str]:
    """A queue of this test's own, so other workers on the same Redis never take its tasks."""
    name = f"estate-ops-{uuid.uuid4().hex[:10]}"
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
    app = make_celery(
        Settings(
            profile="test",
            database_url=pg_context.settings.database_url,
            celery_broker_url=REDIS_URL,
            celery_result_backend=REDIS_URL,
        )
    )
    yield app
    app.close()


def _scrape_until(port: int, ready: re.Pattern[str], timeout_s: float = 15) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        if ready.search(text) or time.monotonic() > deadline:
            return text


def test_worker_reports_task_metrics_and_json_logs(
    pg_context: Context, sender: EstateCelery, queue: str, tmp_path: Path
) -> None:
    add_reporting_device(pg_context, last_seen=utcnow() - timedelta(hours=2))
    port = free_port()
    env = estate_env(
        ESTATE_PROFILE="test",
        ESTATE_DATA_DIR=str(tmp_path),
        ESTATE_DATABASE_URL=pg_context.settings.database_url,
        ESTATE_CELERY_BROKER_URL=REDIS_URL,
        ESTATE_CELERY_RESULT_BACKEND=REDIS_URL,
        ESTATE_LOG_FORMAT="json",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
    )
    args = ["worker", "--concurrency", "2", "--queues", queue, "--metrics-port", str(port)]
    args += ["--hostname", f"{queue}@%h"]
    run_count = re.compile(
        rf'^estate_task_run_seconds_count\{{task="{re.escape(SWEEP_SILENT)}"\}} '
        rf"{float(SWEEPS + 1)}$",
        re.M,
    )
    with running_estate(args, env, tmp_path / "worker.log") as worker:
        results = [sender.tasks[SWEEP_SILENT].apply_async(queue=queue) for _ in range(SWEEPS)]
        # Arguments the task does not take make it raise inside the worker.
        broken = sender.send_task(SWEEP_SILENT, args=["unexpected"], queue=queue)
        try:
            marked = [result.get(timeout=60) for result in results]
            with pytest.raises(TypeError):
                broken.get(timeout=60, propagate=True)
        except ResultTimeout as exc:
            pytest.fail(f"the worker did not run the tasks ({exc!r}):\n{worker.output()}")
        finally:
            for result in (*results, broken):
                result.forget()
        metrics = _scrape_until(port, run_count)
        log_lines = worker.output(lines=1000).splitlines()
        started_in = list((tmp_path / "metrics").iterdir())
    assert len(started_in) == 1, "each start collects metrics in a fresh directory of its own"
    assert not any((tmp_path / "metrics").iterdir()), "metric files are removed on exit"
    # The silent device is marked once; sweeps running at the same moment find it done.
    assert 1 in marked
    assert set(marked) <= {0, 1}
    assert run_count.search(metrics), metrics
    assert _sample(metrics, "estate_task_failures_total", f'{{task="{SWEEP_SILENT}"}}') == 1.0
    assert _sample(metrics, "estate_celery_queue_depth", f'{{queue="{queue}"}}') == 0.0
    assert _sample(metrics, "estate_celery_broker_up") == 1.0
    assert _sample(metrics, "estate_worker_active_tasks") is not None

    records = [json.loads(line) for line in log_lines if line.startswith("{")]
    assert records, "\n".join(log_lines)
    by_job = {record.get("job_id") for record in records}
    assert broken.id in by_job, "the failure is logged with the task's id as job_id"
    swept = [r for r in records if "marked offline" in r["message"]]
    assert len(swept) == 1
    assert swept[0]["job_id"] in {result.id for result in results}
    assert swept[0]["task_name"] == SWEEP_SILENT


def test_queue_depth_is_read_from_redis(queue: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    client.rpush(queue, b"a", b"b", b"c")
    client.close()
    registry = CollectorRegistry()
    registry.register(QueueDepthCollector(REDIS_URL, [queue, f"{queue}-empty"]))
    assert registry.get_sample_value("estate_celery_queue_depth", {"queue": queue}) == 3
    assert registry.get_sample_value("estate_celery_queue_depth", {"queue": f"{queue}-empty"}) == 0
    assert registry.get_sample_value("estate_celery_broker_up") == 1


def test_unreachable_broker_reports_down(caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    registry.register(QueueDepthCollector(f"redis://127.0.0.1:{free_port()}/15", ["estate"]))
    text = generate_latest(registry).decode()
    assert "estate_celery_broker_up 0.0" in text
    assert "estate_celery_queue_depth" not in text
    assert "queue depths ('estate',) unreadable on the broker" in caplog.text
