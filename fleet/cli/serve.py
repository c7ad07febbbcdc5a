"""`estate serve`: the API and web UI under uvicorn, configured for production."""

from __future__ import annotations

import atexit
import os
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import click
from pydantic import ValidationError

from fleet.settings import get_settings

if TYPE_CHECKING:
    from fastapi import FastAPI

APP_FACTORY = "fleet.cli.serve:app_factory"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def app_factory() -> FastAPI:
    """The application for the settings in the environment (`uvicorn --factory` entry point)."""
    from fleet.app import create_app, settle_heap_for_serving
    from fleet.ops.multiprocess import forget_process, multiprocess_dir

    if multiprocess_dir() is not None:
        atexit.register(forget_process, os.getpid())
    app = create_app(get_settings())
    settle_heap_for_serving()
    return app


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="Port."
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes; each builds its own application and database pool.",
)
@click.option(
    "--proxy-headers",
    is_flag=True,
    help="Trust X-Forwarded-For/-Proto from --forwarded-allow-ips (set behind a "
    "TLS-terminating proxy so client addresses and https links are right).",
)
@click.option(
    "--forwarded-allow-ips",
    default=None,
    help="Comma-separated proxy addresses (or *) whose forwarded headers are trusted  "
    "[default: $FORWARDED_ALLOW_IPS or the loopback addresses]",
)
@click.option("--log-level", type=click.Choice(LOG_LEVELS), default="info", show_default=True)
def serve(
    host: str,
    port: int,
    workers: int,
    proxy_headers: bool,
    forwarded_allow_ips: str | None,
    log_level: str,
) -> None:
    """Run the API (/api/v1) and web UI, with /healthz, /readyz and /metrics.

    Settings come from ESTATE_* variables; apply migrations first with `estate db upgrade`.

    \b
    Example (behind a reverse proxy):
      estate serve --host 0.0.0.0 --port 8000 --workers 4 --proxy-headers
    """
    try:
        # Refuse bad settings here, once, rather than in every worker process.
        settings = get_settings()
    except ValidationError as exc:
        raise click.ClickException(f"invalid settings:\n{exc}") from exc
    from fleet.ops.logging import logging_config
    from fleet.ops.multiprocess import multiprocess_metrics

    # Several workers each count their own requests: files let /metrics add them all up.
    metrics_files = multiprocess_metrics("serve") if workers > 1 else nullcontext()
    with metrics_files:
        _run_uvicorn(
            host,
            port,
            workers,
            proxy_headers,
            forwarded_allow_ips,
            log_level,
            logging_config(log_level, settings.log_format),
        )


def _run_uvicorn(
    host: str,
    port: int,
    workers: int,
    proxy_headers: bool,
    forwarded_allow_ips: str | None,
    log_level: str,
    log_config: dict[str, Any],
) -> None:
    import uvicorn

    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=proxy_headers,
        forwarded_allow_ips=forwarded_allow_ips,
        access_log=True,
        reload=False,
        log_level=log_level,
        log_config=log_config,
        server_header=False,
    )
