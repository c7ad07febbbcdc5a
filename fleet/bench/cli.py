"""`estate bench`: benchmarks that print their figures."""

from __future__ import annotations

import logging
import sys

import click

from fleet.settings import get_settings


@click.group()
def bench() -> None:
    """Benchmarks against the configured services (ESTATE_DATABASE_URL, ESTATE_MQTT_URL, ...)."""


@bench.command("ingest")
@click.option(
    "--devices",
    type=click.IntRange(1, 200_000),
    default=1000,
    show_default=True,
    help="Simulated devices; each gets one report per publishing round.",
)
@click.option(
    "--seconds",
    type=click.FloatRange(1, 3600),
    default=30,
    show_default=True,
    help="How long to publish.",
)
@click.option(
    "--rate",
    type=click.FloatRange(0),
    default=0,
    show_default=True,
    help="Reports per second to publish; 0 publishes as fast as the broker and --window allow.",
)
@click.option(
    "--window",
    type=click.IntRange(0),
    default=6_000,
    show_default=True,
    help="Most reports published but not yet visible (0 = unbounded). Keeps the broker's "
    "queue for ingest within its limits, so a slow ingest shows as lower throughput, not loss.",
)
@click.option("--prison", default="MDI", show_default=True, help="Prison for the bench devices.")
@click.option("--baseline-seconds", type=click.FloatRange(1, 600), default=10, show_default=True)
def ingest_bench(
    devices: int, seconds: float, rate: float, window: int, prison: str, baseline_seconds: float
) -> None:
    """Sustained reports/s through `estate ingest`, with publish-to-visible latency.

    Creates DEVICES throwaway devices (ids <PRISON>-bench-<run>-NNNNNN) in the configured
    database,
    starts `estate ingest` as a child process, publishes health reports at QoS 1 from
    another process for SECONDS, and times each report until device_state shows it. Then
    it checks every report reached the health history, measures a bare paho + orjson
    consumer on the same broker, removes the devices, their series and the broker session,
    and prints one line of figures. Progress goes to stderr.
    """
    from fleet.bench.ingest import BenchError, run_ingest_bench

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = run_ingest_bench(
            get_settings(),
            devices=devices,
            seconds=seconds,
            rate=rate,
            window=window,
            prison=prison.upper(),
            baseline_seconds=baseline_seconds,
            progress=lambda line: click.echo(line, err=True),
        )
    except BenchError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(result.line())
    sys.stdout.flush()


@bench.command("pages")
@click.option("--prisons", type=click.IntRange(1, 500), default=120, show_default=True)
@click.option("--devices", type=click.IntRange(1, 1_000_000), default=200_000, show_default=True)
@click.option(
    "--requests",
    type=click.IntRange(5, 10_000),
    default=60,
    show_default=True,
    help="Timed requests per page, after one untimed warm-up request.",
)
def pages_bench(prisons: int, devices: int, requests: int) -> None:
    """p50/p95 server time of the estate overview, a prison page, the device list and a device.

    Seeds PRISONS prisons and DEVICES devices (ids benchpg-NNNNNN, wings B1-B4) into the
    configured database unless an earlier run left them there, signs in as the bench
    account, and times each page in-process. Use a database of its own: the seeded
    devices stay. Progress goes to stderr; one line per page to stdout.
    """
    from fleet.bench.pages import BenchError, run_pages_bench

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        timings = run_pages_bench(
            get_settings(),
            prisons=prisons,
            devices=devices,
            requests=requests,
            progress=lambda line: click.echo(line, err=True),
        )
    except BenchError as exc:
        raise click.ClickException(str(exc)) from exc
    for timing in timings:
        click.echo(timing.line())
    sys.stdout.flush()
