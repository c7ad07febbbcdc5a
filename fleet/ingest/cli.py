"""`estate ingest`: consume device reports from MQTT into SQL and the time-series database."""

from __future__ import annotations

import logging
import signal
import socket
from types import FrameType

import click

from fleet.settings import get_settings

log = logging.getLogger(__name__)


def default_client_id() -> str:
    """Stable across restarts on one host, so the broker hands back the same session."""
    return f"estate-ingest-{socket.gethostname()}"[:64]


@click.command()
@click.option(
    "--client-id",
    envvar="ESTATE_INGEST_CLIENT_ID",
    default=None,
    help="MQTT client id; the broker keeps this id's session (and queues reports for it) "
    "while the process is down, so give every ingest replica its own stable id. "
    "Defaults to estate-ingest-<hostname>.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve Prometheus /metrics on this port (0 = off). "
    "Defaults to ESTATE_INGEST_METRICS_PORT.",
)
@click.option(
    "--session-expiry",
    type=click.IntRange(0, 2**32 - 1),
    default=86400,
    show_default=True,
    help="Seconds the broker keeps the session and queues reports after a disconnect.",
)
@click.option(
    "--topic-root",
    default="",
    help="Prefix in front of estate/v1/dev/... when the broker is shared with other "
    "environments (e.g. 'staging/'); devices must publish under the same prefix.",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="INFO",
    show_default=True,
)
def ingest(
    client_id: str | None,
    metrics_port: int | None,
    session_expiry: int,
    topic_root: str,
    log_level: str,
) -> None:
    """Consume device health and state reports from MQTT into the stores.

    Subscribes (with a shared subscription, so several processes split the load) to
    estate/v1/dev/+/health and estate/v1/dev/+/state; per batch of ESTATE_INGEST_BATCH_SIZE
    messages or ESTATE_INGEST_BATCH_MS milliseconds, it updates device_state in the
    database (ESTATE_DATABASE_URL), writes health history to ESTATE_TSDB_URL (or to the
    health_sample table when unset), and only then acknowledges the messages. Bad messages
    are counted by reason and kept in the dead_letter table. Every
    ESTATE_SWEEP_INTERVAL_S it marks devices silent for ESTATE_OFFLINE_AFTER_S as lost.

    SIGTERM or Ctrl-C finishes the batch in hand, acknowledges it and disconnects; a second
    signal abandons it to broker redelivery.
    """
    from fleet.broker.embedded import supports_shared_subscriptions
    from fleet.context import Context
    from fleet.ingest.metrics import IngestMetrics, metrics_registry, serve_metrics
    from fleet.ingest.pipeline import IngestPipeline, PipelineOptions

    if topic_root and not topic_root.endswith("/"):
        raise click.BadParameter(
            "must end with '/', for example 'staging/'", param_hint="--topic-root"
        )
    from fleet.ops.logging import configure_logging

    settings = get_settings()
    configure_logging(log_level, settings.log_format)
    port = settings.ingest_metrics_port if metrics_port is None else metrics_port
    registry = metrics_registry()
    metrics = IngestMetrics(registry)
    if port:
        serve_metrics(port, registry)
    ctx = Context(settings)
    options = PipelineOptions(
        client_id=client_id or default_client_id(),
        shared=supports_shared_subscriptions(settings),
        session_expiry_s=session_expiry,
        topic_root=topic_root,
    )
    pipeline = IngestPipeline(ctx, options, metrics=metrics)

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: finishing the batch in hand", signal.Signals(signum).name)
        pipeline.stop()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    log.info(
        "ingest starting: broker %s, client id %s, tsdb %s",
        pipeline.consumer.address.redacted(),
        options.client_id,
        settings.tsdb_url or "none (health_sample table)",
    )
    try:
        pipeline.run()
    finally:
        ctx.close()
