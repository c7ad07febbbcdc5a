"""`estate bench`: benchmarks that print their figures."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click

from fleet.settings import get_settings


def to_stderr(line: str) -> None:
    """Progress lines go to stderr, so stdout holds only the figures."""
    click.echo(line, err=True)


@contextmanager
def reported_as_click_errors(*errors: type[Exception]) -> Iterator[None]:
    """Warnings and worse logged plainly; a bench that cannot run says why and exits 1."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        yield
    except errors as exc:
        raise click.ClickException(str(exc)) from exc


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
@click.option(
    "--processes",
    type=click.IntRange(1, 16),
    default=1,
    show_default=True,
    help="estate ingest processes sharing the subscription; the line shows each one's share.",
)
def ingest_bench(
    devices: int,
    seconds: float,
    rate: float,
    window: int,
    prison: str,
    baseline_seconds: float,
    processes: int,
) -> None:
    """Sustained reports/s through `estate ingest`, with publish-to-visible latency.

    Creates DEVICES throwaway devices (ids <PRISON>-bench-<run>-NNNNNN) in the configured
    database,
    starts PROCESSES `estate ingest` child processes in one shared subscription group,
    publishes health reports at QoS 1 from another process for SECONDS, and times each
    report until device_state shows it. Then it checks every report reached the health
    history and was delivered to exactly one process (lost, doubled, each one's share),
    measures a bare consumer (ingest's MQTT reader and orjson, acknowledging at once) on
    the same broker with the same publisher,
    removes the devices, their series and the broker sessions, and prints one line of
    figures. Progress goes to stderr.
    """
    from fleet.bench.ingest import BenchError, run_ingest_bench

    with reported_as_click_errors(BenchError):
        result = run_ingest_bench(
            get_settings(),
            devices=devices,
            seconds=seconds,
            rate=rate,
            window=window,
            prison=prison.upper(),
            baseline_seconds=baseline_seconds,
            processes=processes,
            progress=to_stderr,
        )
    click.echo(result.line())
    sys.stdout.flush()


@bench.command("agent")
@click.option("--seconds", type=click.FloatRange(1, 86400), default=600, show_default=True)
@click.option(
    "--interval",
    type=click.FloatRange(0.1, 3600),
    default=30,
    show_default=True,
    help="Seconds between the agent's health reports.",
)
@click.option(
    "--mqtt-url",
    default="mqtt://127.0.0.1:1883",
    show_default=True,
    help="A broker that accepts anonymous clients.",
)
def agent_bench(seconds: float, interval: float, mqtt_url: str) -> None:
    """Resident memory and CPU of one device agent reporting every INTERVAL seconds.

    Runs the agent (python -m agents.cli) with a throwaway identity against MQTT_URL for
    SECONDS after a short warm-up, samples it with psutil, and prints its RSS, PSS and
    unshared memory, its share of one core, and the files holding the most memory.
    """
    from agents.footprint import measure, report

    click.echo(f"measuring one agent for {seconds:.0f} s", err=True)
    for line in report(measure(seconds, interval, mqtt_url)):
        click.echo(line)


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

    with reported_as_click_errors(BenchError):
        timings = run_pages_bench(
            get_settings(),
            prisons=prisons,
            devices=devices,
            requests=requests,
            progress=to_stderr,
        )
    for timing in timings:
        click.echo(timing.line())
    sys.stdout.flush()


@bench.command("rollout")
@click.option("--prisons", type=click.IntRange(1, 500), default=120, show_default=True)
@click.option("--devices", type=click.IntRange(1, 1_000_000), default=200_000, show_default=True)
@click.option(
    "--days",
    type=click.IntRange(2, 3650),
    default=730,
    show_default=True,
    help="Days of daily snapshot history per prison plan.",
)
@click.option(
    "--requests",
    type=click.IntRange(5, 10_000),
    default=60,
    show_default=True,
    help="Timed requests per page or API call, after one untimed warm-up request.",
)
@click.option("--keep", is_flag=True, help="Keep the bench database instead of dropping it.")
def rollout_bench(prisons: int, devices: int, days: int, requests: int, keep: bool) -> None:
    """p50/p95 of the programme overview (API, page, CSV) and the daily snapshot job's time.

    Creates a database of its own on the PostgreSQL server ESTATE_DATABASE_URL points at,
    seeds PRISONS prisons with DEVICES devices, one programme with every prison in it and
    DAYS days of daily snapshots, then times the whole-estate snapshot job and each page
    over loopback. The database is dropped afterwards unless --keep. Targets: overview
    p95 under 150 ms, snapshot job under 10 s. Progress goes to stderr; figures to stdout.
    """
    from fleet.bench.rollout import BenchError, run_rollout_bench

    with reported_as_click_errors(BenchError):
        figures = run_rollout_bench(
            get_settings(),
            prisons=prisons,
            devices=devices,
            days=days,
            requests=requests,
            keep=keep,
            progress=to_stderr,
        )
    for line in figures.lines():
        click.echo(line)
    sys.stdout.flush()


@bench.command("faults")
@click.option(
    "--faults",
    type=click.IntRange(100, 20_000_000),
    default=1_000_000,
    show_default=True,
    help="Historical faults to seed, spread over three years.",
)
@click.option("--prisons", type=click.IntRange(1, 500), default=120, show_default=True)
@click.option(
    "--requests",
    type=click.IntRange(5, 10_000),
    default=60,
    show_default=True,
    help="Timed requests per list, report or page, after one untimed warm-up request.",
)
@click.option("--keep", is_flag=True, help="Keep the bench database instead of dropping it.")
def faults_bench(faults: int, prisons: int, requests: int, keep: bool) -> None:
    """p50/p95 of the open-faults list API with filters, and of the fault reports API and page.

    Creates a database of its own on the PostgreSQL server ESTATE_DATABASE_URL points at,
    seeds PRISONS prisons (4 wings x 4 landings x 30 cells each) and FAULTS historical faults
    with COPY (old ones closed, recent ones along the workflow, a few places that keep failing),
    then times each URL over loopback as the prison's facilities staff or an estate admin.
    The database is dropped afterwards unless --keep. Target: p95 under 150 ms each.
    Progress goes to stderr; figures to stdout.
    """
    from fleet.bench.faults import BenchError, run_faults_bench

    with reported_as_click_errors(BenchError):
        result = run_faults_bench(
            get_settings(),
            faults=faults,
            prisons=prisons,
            requests=requests,
            keep=keep,
            progress=to_stderr,
        )
    for line in result.lines():
        click.echo(line)
    sys.stdout.flush()


@bench.command("ansible")
@click.option(
    "--agents",
    type=click.IntRange(1, 1000),
    default=100,
    show_default=True,
    help="Real agents (one child process hosts them all), each its own MQTT identity.",
)
@click.option(
    "--forks",
    type=click.IntRange(1, 500),
    default=25,
    show_default=True,
    help="Ansible forks, the same for the MQTT run and the local baseline.",
)
@click.option(
    "--tasks",
    "kind",
    type=click.Choice(["modules", "raw"]),
    default="modules",
    show_default=True,
    help="modules: ping, copy, command (Python on the device); raw: the same steps as shell "
    "commands, which measures the transport alone.",
)
def ansible_bench(agents: int, forks: int, kind: str) -> None:
    """A three-task playbook over MQTT to AGENTS agents, against ansible_connection=local.

    Starts a private Mosquitto on a free loopback port and AGENTS real agents in one child
    process, runs the playbook (ping, copy, command) through ansible-runner and a job gateway,
    then the same playbook with ansible_connection=local for as many hosts, and prints the
    total time of each, the per-task overhead of the MQTT path and whether the 100-agent run
    stays under 60 s. Needs no database. Progress goes to stderr; figures to stdout.
    """
    from fleet.bench.ansible import run_ansible_bench
    from fleet.bench.stores import BenchError

    with reported_as_click_errors(BenchError):
        figures = run_ansible_bench(agents=agents, forks=forks, kind=kind, progress=to_stderr)
    click.echo(figures.line())


@bench.command("alerts")
@click.option("--devices", type=click.IntRange(10, 1_000_000), default=200_000, show_default=True)
@click.option("--prisons", type=click.IntRange(1, 120), default=120, show_default=True)
@click.option(
    "--rounds",
    type=click.IntRange(1, 50),
    default=5,
    show_default=True,
    help="Repeat passes (and baseline queries) timed; the median is reported.",
)
def alerts_bench(devices: int, prisons: int, rounds: int) -> None:
    """Time a full alert-evaluation pass over DEVICES device states (bar: under 2 s).

    Creates a database of its own on the PostgreSQL server ESTATE_DATABASE_URL points at,
    generates PRISONS prisons of wings, landings and cells with DEVICES devices, their latest
    state and a day of device events, adds eight rules (offline, battery, storage,
    temperature, agent version, configuration drift, flapping), then times the first pass,
    repeat passes and a pass after 1% of devices changed, each against one COUNT over
    device_state measured in the same run. The database is dropped afterwards. Progress goes
    to stderr; figures to stdout.
    """
    from fleet.bench.alerts import run_alerts_bench
    from fleet.bench.database import BenchError

    with reported_as_click_errors(BenchError):
        figures = run_alerts_bench(
            get_settings(),
            devices=devices,
            prisons=prisons,
            rounds=rounds,
            progress=to_stderr,
        )
    for line in figures.lines():
        click.echo(line)
    sys.stdout.flush()


@bench.command("api")
@click.option("--prisons", type=click.IntRange(1, 500), default=120, show_default=True)
@click.option("--devices", type=click.IntRange(1, 1_000_000), default=200_000, show_default=True)
@click.option("--faults", type=click.IntRange(1, 10_000_000), default=1_000_000, show_default=True)
@click.option(
    "--seconds", type=click.FloatRange(1, 600), default=15, show_default=True, help="Per endpoint."
)
@click.option(
    "--connections",
    type=click.IntRange(1, 10_000),
    default=32,
    show_default=True,
    help="Concurrent HTTP connections wrk keeps open.",
)
@click.option("--threads", type=click.IntRange(1, 64), default=2, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=2,
    show_default=True,
    help="`estate serve --workers`: server processes.",
)
@click.option("--keep-database", is_flag=True, help="Keep the seeded database for another look.")
def api_bench(
    prisons: int,
    devices: int,
    faults: int,
    seconds: float,
    connections: int,
    threads: int,
    workers: int,
    keep_database: bool,
) -> None:
    """Requests/s and p50/p99 of the main API list endpoints under concurrent load.

    Creates a database of its own on the PostgreSQL server of ESTATE_DATABASE_URL, seeds
    PRISONS prisons with DEVICES devices and FAULTS faults (COPY), starts `estate serve`
    with the production profile and WORKERS processes, and drives each endpoint (estate
    overview, filtered device lists and searches, filtered fault lists) with wrk for SECONDS
    with CONNECTIONS connections and a bearer token. The database is dropped afterwards.
    Needs wrk (scripts/install-system-deps). Progress goes to stderr; one line per endpoint
    to stdout.
    """
    from fleet.bench.api_load import BenchError, run_api_bench

    with reported_as_click_errors(BenchError):
        results = run_api_bench(
            get_settings(),
            prisons=prisons,
            devices=devices,
            faults=faults,
            seconds=seconds,
            connections=connections,
            threads=threads,
            workers=workers,
            keep_database=keep_database,
            progress=to_stderr,
        )
    for result in results:
        click.echo(result.line())
    sys.stdout.flush()
