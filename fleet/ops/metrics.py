"""Prometheus metrics for the API process, and the /metrics body in every mode."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import Response

from fleet.ops.multiprocess import multiprocess_dir


def exposition(registry: CollectorRegistry) -> bytes:
    """The /metrics body: this registry, plus every process's files in multiprocess mode."""
    directory = multiprocess_dir()
    if directory is None:
        return generate_latest(registry)
    combined = CollectorRegistry()
    MultiProcessCollector(combined, path=str(directory))
    combined.register(registry)
    return generate_latest(combined)


class ApiMetrics:
    """Requests and latency by route; in multiprocess mode they reach /metrics via files."""

    def __init__(self, registry: CollectorRegistry) -> None:
        # Registered here only when in memory; with files, the multiprocess collector adds
        # them up, and registering them as well would show this process's share twice.
        target = None if multiprocess_dir() else registry
        self.requests = Counter(
            "estate_api_requests", "API requests", ["method", "route", "status"], registry=target
        )
        self.latency = Histogram(
            "estate_api_request_seconds",
            "API request latency",
            ["method", "route"],
            registry=target,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )

    async def middleware(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        # Label by the route template, never the raw path, to keep cardinality bounded.
        template = getattr(route, "path", "unmatched")
        self.latency.labels(request.method, template).observe(time.perf_counter() - start)
        self.requests.labels(request.method, template, str(response.status_code)).inc()
        return response
