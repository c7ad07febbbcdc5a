"""Prometheus metrics of the ingest pipeline, registered on a registry the caller chooses."""

from __future__ import annotations

import logging

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import start_http_server

log = logging.getLogger(__name__)

BATCH_SIZE_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10_000, 50_000)
BATCH_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def metrics_registry() -> CollectorRegistry:
    """The process-wide registry that `estate ingest` and `estate serve` expose on /metrics."""
    return REGISTRY


class IngestMetrics:
    """Every counter, gauge and histogram the pipeline updates."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = registry if registry is not None else REGISTRY
        self.received = Counter(
            "estate_ingest_messages_received",
            "MQTT messages taken off the broker, by channel (health, state, other).",
            ["channel"],
            registry=reg,
        )
        self.written = Counter(
            "estate_ingest_messages_written",
            "Reports durably written to the stores, by channel.",
            ["channel"],
            registry=reg,
        )
        self.rejected = Counter(
            "estate_ingest_messages_rejected",
            "Messages refused, by reason; stale_seq and stale_state reports still reach history.",
            ["reason"],
            registry=reg,
        )
        self.dead_letters = Counter(
            "estate_ingest_dead_letters",
            "Rejected messages kept in the dead-letter table.",
            registry=reg,
        )
        self.batch_size = Histogram(
            "estate_ingest_batch_size",
            "Messages per batch.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=reg,
        )
        self.batch_seconds = Histogram(
            "estate_ingest_batch_seconds",
            "Time to write and acknowledge one batch.",
            buckets=BATCH_SECONDS_BUCKETS,
            registry=reg,
        )
        self.batch_retries = Counter(
            "estate_ingest_batch_retries",
            "Batches written again after a database error.",
            registry=reg,
        )
        self.device_events = Counter(
            "estate_ingest_device_events",
            "Device events recorded, by kind (online, offline, lost, silent).",
            ["kind"],
            registry=reg,
        )
        self.tsdb_write_failures = Counter(
            "estate_ingest_tsdb_write_failures",
            "Line-protocol writes the time-series database refused or never answered.",
            registry=reg,
        )
        self.tsdb_lines = Counter(
            "estate_ingest_tsdb_lines",
            "Lines accepted by the time-series database (direct and replayed).",
            registry=reg,
        )
        self.spool_bytes = Gauge(
            "estate_ingest_tsdb_spool_bytes",
            "Bytes of line protocol waiting on disk for the time-series database.",
            registry=reg,
        )
        self.spool_files = Gauge(
            "estate_ingest_tsdb_spool_files",
            "Batches waiting on disk for the time-series database.",
            registry=reg,
        )
        self.spool_dropped = Counter(
            "estate_ingest_tsdb_spool_dropped_lines",
            "Spooled lines discarded because the spool was full or the TSDB refused them.",
            registry=reg,
        )
        self.queue_depth = Gauge(
            "estate_ingest_queue_depth",
            "Messages received and waiting for the writer.",
            registry=reg,
        )
        self.silent_marked = Counter(
            "estate_ingest_devices_marked_silent",
            "Devices the sweeper marked lost because they stopped reporting.",
            registry=reg,
        )


def serve_metrics(port: int, registry: CollectorRegistry | None = None) -> None:
    """Serve /metrics on 0.0.0.0:port from a daemon thread."""
    start_http_server(port, registry=registry if registry is not None else REGISTRY)
    log.info("metrics on http://0.0.0.0:%d/metrics", port)
