"""`estate worker` and `estate beat`: Celery's worker and scheduler, started from settings."""

from __future__ import annotations

from pathlib import Path

import click
from pydantic import ValidationError

from fleet.ops.multiprocess import multiprocess_metrics
from fleet.settings import Settings, get_settings

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
POOLS = ("prefork", "threads", "solo")


def _settings_with_real_broker(process: str) -> Settings:
    try:
        settings = get_settings()
    except ValidationError as exc:
        raise click.ClickException(f"invalid settings:\n{exc}") from exc
    from fleet.tasks.app import IN_PROCESS_BROKER

    if settings.celery_broker_url == IN_PROCESS_BROKER:
        raise click.UsageError(
            f"a {process} needs a real broker: set ESTATE_CELERY_BROKER_URL=redis://... "
            "(for example redis://127.0.0.1:6379/0). With the default memory:// broker, tasks "
            "run inside the process that sends them and no separate "
            f"{process} is needed."
        )
    return settings


def _log_through_estate(loglevel: str, settings: Settings) -> None:
    """Have Celery use the platform's log format (ESTATE_LOG_FORMAT) instead of its own."""
    from celery.signals import setup_logging

    from fleet.ops.logging import configure_logging

    def _configure(**_: object) -> None:
        configure_logging(loglevel, settings.log_format)

    # A receiver on setup_logging tells Celery to leave logging to it.
    setup_logging.connect(_configure, weak=False)


def _queue_names(value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise click.BadParameter("give at least one queue name, e.g. estate", param_hint="--queues")
    return names


@click.command()
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(min=1),
    default=None,
    help="Tasks run at once (child processes or threads)  [default: number of CPUs]",
)
@click.option(
    "--queues",
    "-Q",
    default="estate",
    show_default=True,
    help="Comma-separated queues to consume, e.g. estate,ansible.",
)
@click.option(
    "--loglevel",
    "-l",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="info",
    show_default=True,
)
@click.option(
    "--pool",
    type=click.Choice(POOLS),
    default="prefork",
    show_default=True,
    help="prefork: one process per task slot (isolation); threads: I/O-bound work; "
    "solo: one task at a time in this process (debugging).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Serve Prometheus /metrics (task run times, failures, queue depths) on this port; "
    "0 turns it off.",
)
@click.option(
    "--hostname",
    "-n",
    default=None,
    help="Node name shown in monitoring  [default: celery@<host name>]",
)
def worker(
    concurrency: int | None,
    queues: str,
    loglevel: str,
    pool: str,
    metrics_port: int,
    hostname: str | None,
) -> None:
    """Run a Celery worker executing the platform's background tasks.

    Reads the same ESTATE_* settings as every process; needs a real broker in
    ESTATE_CELERY_BROKER_URL (Redis) and ESTATE_CELERY_RESULT_BACKEND for callers that wait
    for results.

    \b
    Example:
      ESTATE_CELERY_BROKER_URL=redis://127.0.0.1:6379/0 estate worker --concurrency 4
    """
    queue_names = _queue_names(queues)
    # Pool processes write task metrics to files that the main process's /metrics adds up.
    with multiprocess_metrics("worker"):
        settings = _settings_with_real_broker("worker")
        _log_through_estate(loglevel, settings)
        from fleet.tasks.app import make_celery

        app = make_celery(settings)
        if metrics_port:
            from fleet.tasks.metrics import serve_worker_metrics

            serve_worker_metrics(
                metrics_port, broker_url=settings.celery_broker_url, queues=queue_names
            )
        runner = app.Worker(
            hostname=hostname,
            pool_cls=pool,
            concurrency=concurrency,
            queues=queue_names,
            loglevel=loglevel.upper(),
        )
        runner.start()
        exit_code = runner.exitcode
    raise SystemExit(exit_code)


@click.command()
@click.option(
    "--schedule-file",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Where beat records when each task last ran  [default: $ESTATE_DATA_DIR/"
    "celerybeat-schedule]",
)
@click.option(
    "--loglevel",
    "-l",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="info",
    show_default=True,
)
def beat(schedule_file: Path | None, loglevel: str) -> None:
    """Run the Celery beat scheduler: sends periodic tasks (e.g. the silent-device sweep).

    Run exactly one beat per deployment, or tasks are sent twice. Intervals come from
    settings (ESTATE_SWEEP_INTERVAL_S, ...).

    \b
    Example:
      ESTATE_CELERY_BROKER_URL=redis://127.0.0.1:6379/0 estate beat
    """
    settings = _settings_with_real_broker("beat scheduler")
    _log_through_estate(loglevel, settings)
    from fleet.tasks.app import make_celery

    app = make_celery(settings)
    path = schedule_file or Path(app.conf.beat_schedule_filename)
    path.parent.mkdir(parents=True, exist_ok=True)
    app.Beat(schedule=str(path), loglevel=loglevel.upper()).run()
