"""Prometheus metrics of a worker, read from the state Celery keeps in its main process."""

from __future__ import annotations

from collections.abc import Iterator

from celery.worker import state
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


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


def worker_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(WorkerStateCollector())
    return registry


def serve_worker_metrics(port: int, host: str = "0.0.0.0") -> None:
    """Expose /metrics for this worker's main process on a background thread."""
    start_http_server(port, addr=host, registry=worker_registry())
