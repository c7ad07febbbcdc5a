"""Prometheus metrics of a worker: task run times and failures from every pool process,
the main process's own task state, and the depth of each queue it consumes on the broker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator

import redis
from celery.worker import state
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from fleet.ops.multiprocess import multiprocess_dir

log = logging.getLogger(__name__)

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
# Tasks range from a sub-second sweep to Ansible runs of many minutes.
RUN_TIME_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class TaskMetrics:
    """Run time and failures by task name, observed in the process that runs the task.

    Never registered: under `estate worker` they are written to multiprocess files and
    added up by the worker's /metrics; elsewhere (eager tasks) nobody exposes them.
    """

    def __init__(self) -> None:
        self.run_seconds = Histogram(
            "estate_task_run_seconds",
            "Time a task ran, by task name",
            ["task"],
            registry=None,
            buckets=RUN_TIME_BUCKETS,
        )
        self.failures = Counter(
            "estate_task_failures", "Tasks that raised, by task name", ["task"], registry=None
        )
        self._started: dict[str, float] = {}

    def started(self, task_id: str) -> None:
        self._started[task_id] = time.perf_counter()

    def finished(self, task_id: str, task_name: str) -> None:
        start = self._started.pop(task_id, None)
        if start is None:
            log.warning("task %s (id=%s) finished without a recorded start", task_name, task_id)
            return
        self.run_seconds.labels(task_name).observe(time.perf_counter() - start)

    def failed(self, task_name: str) -> None:
        self.failures.labels(task_name).inc()


TASK_METRICS = TaskMetrics()


class WorkerStateCollector(Collector):
    """Tasks accepted by name, and the tasks this worker is running or holding right now."""

    def collect(self) -> Iterator[Metric]:
        accepted = CounterMetricFamily(
            "estate_worker_tasks_accepted",
            "Tasks this worker started, by task name",
            labels=["task"],
        )
        for name, count in sorted(state.total_count.items()):
            accepted.add_metric([name], count)
        yield accepted
        yield GaugeMetricFamily(
            "estate_worker_active_tasks", "Tasks executing now", value=len(state.active_requests)
        )
        yield GaugeMetricFamily(
            "estate_worker_reserved_tasks",
            "Tasks received and waiting for a free process",
            value=len(state.reserved_requests),
        )


class QueueDepthCollector(Collector):
    """Tasks waiting in each queue, read from the Redis broker (LLEN) at every scrape."""

    def __init__(self, broker_url: str, queues: Iterable[str]) -> None:
        self.queues = tuple(queues)
        self.client = redis.Redis.from_url(broker_url, socket_timeout=2, socket_connect_timeout=2)

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "estate_celery_broker_up",
            "1 when the queue depths were read from the broker on this scrape, else 0.",
        )
        try:
            pipeline = self.client.pipeline(transaction=False)
            for queue in self.queues:
                pipeline.llen(queue)
            lengths = pipeline.execute()
        except redis.RedisError as exc:  # the worker's own metrics must still be served
            log.warning("queue depths %s unreadable on the broker: %s", self.queues, exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        depth = GaugeMetricFamily(
            "estate_celery_queue_depth",
            "Tasks waiting on the broker, by queue",
            labels=["queue"],
        )
        for queue, length in zip(self.queues, lengths, strict=True):
            depth.add_metric([queue], int(length))
        yield depth

    def describe(self) -> Iterator[Metric]:
        # Without a broker at registration time, describe nothing rather than connect.
        return iter(())


def worker_registry(broker_url: str = "", queues: Iterable[str] = ()) -> CollectorRegistry:
    """The worker's /metrics: its task state, every process's task metrics, queue depths."""
    registry = CollectorRegistry()
    registry.register(WorkerStateCollector())
    directory = multiprocess_dir()
    if directory is not None:
        MultiProcessCollector(registry, path=str(directory))
    if broker_url.startswith(REDIS_SCHEMES):
        registry.register(QueueDepthCollector(broker_url, queues))
    elif broker_url:
        log.info("queue depth is reported for Redis brokers only, not %s", broker_url.split(":")[0])
    return registry


def serve_worker_metrics(
    port: int, host: str = "0.0.0.0", *, broker_url: str = "", queues: Iterable[str] = ()
) -> None:
    """Expose /metrics for this worker's main process on a background thread."""
    start_http_server(port, addr=host, registry=worker_registry(broker_url, queues))
