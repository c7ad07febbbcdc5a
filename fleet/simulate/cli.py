"""`estate simulate`: a fleet of simulated devices reporting over MQTT like real ones."""

from __future__ import annotations

import logging
import resource
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from fleet.enrolment.service import KIND_CODES

if TYPE_CHECKING:
    from fleet.simulate.simulator import Simulator

EVENT_ACTIONS = ("power_cut", "restore", "drop", "return")


@dataclass(frozen=True, order=True)
class ScriptedEvent:
    at_s: float
    action: str
    target: str


def parse_event(text: str) -> ScriptedEvent:
    """'AT:ACTION:TARGET', e.g. '60:power_cut:MDI-1-1' or '90:drop:MDI-ICP-0A1B2C'."""
    parts = text.split(":", 2)
    if len(parts) != 3 or not parts[2].strip():
        raise click.BadParameter(
            f"{text!r} should look like AT:ACTION:TARGET, e.g. 60:power_cut:MDI-1-1"
        )
    at, action, target = parts
    try:
        at_s = float(at)
    except ValueError:
        raise click.BadParameter(f"{at!r} in {text!r} is not a number of seconds") from None
    if at_s < 0 or action not in EVENT_ACTIONS:
        raise click.BadParameter(
            f"{text!r}: AT must be seconds >= 0 and ACTION one of {', '.join(EVENT_ACTIONS)}"
        )
    return ScriptedEvent(at_s, action, target.strip())


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _raise_file_limit(needed: int) -> None:
    """Each device holds a socket: lift the soft open-file limit, or say what to change."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise click.ClickException(
            f"{needed} open files are needed but the limit is {hard}: raise it (ulimit -n "
            f"{needed}, or LimitNOFILE= for a service) or simulate fewer devices"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def _list_prisons() -> None:
    from fleet.estate.service import reference_prisons

    for code, name in sorted(reference_prisons()):
        click.echo(f"{code}\t{name}")


HELP = """Run simulated devices of real prisons against the MQTT broker.

Each simulated device is enrolled through the normal enrolment path (so it appears in the
device list with its own broker login), then connects as its own MQTT client: it publishes a
retained `online` birth, leaves a `lost` Last Will, and sends health reports (battery,
charging, cpu, memory, storage, temperature, signal) every --interval seconds, spread evenly.
Ctrl-C or SIGTERM publishes `offline` for every device and disconnects cleanly.

Phones and tablets sit in cells, laptops and kiosks on landings; the mix is about 5 phones to
4 tablets to 1 laptop. Prisons with no cells get a generated tree (4+ wings x 3 landings x 25
cells). With ESTATE_MQTT_CREDENTIALS=dynsec every device gets its own Mosquitto login.
Identities are kept in the state file (mode 0600, it holds passwords): running again reuses
them, and report sequence numbers carry on rising.

\b
Faults:
  --fault-rate 0.5      each device drops about once every two hours, at random
  --event 60:power_cut:MDI-1-1   at 60 s every device on landing MDI-1-1 goes at once
  --event 300:restore:MDI-1-1    ... and comes back
  --event 90:drop:DEVICE-ID      one device goes silent (until a restore or return event)

\b
Example:
  estate simulate --prisons MDI,LEI --devices-per-prison 300 --interval 30
"""


@click.command(help=HELP)
@click.option("--prisons", default="", help="Comma-separated prison codes, e.g. MDI,LEI.")
@click.option(
    "--devices-per-prison",
    type=click.IntRange(1, 50_000),
    default=300,
    show_default=True,
    help="Devices each prison should have; simulated ones already enrolled are reused.",
)
@click.option(
    "--interval",
    type=click.FloatRange(0.1, 3600),
    default=30.0,
    show_default=True,
    help="Seconds between each device's health reports.",
)
@click.option(
    "--kinds",
    default="in_cell_phone,tablet,laptop",
    show_default=True,
    help=f"Device kinds to simulate, split in a typical mix (from {', '.join(KIND_CODES)}).",
)
@click.option(
    "--duration",
    type=click.FloatRange(0, min_open=True),
    default=None,
    help="Stop after this many seconds (default: run until interrupted).",
)
@click.option(
    "--fault-rate",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    help="Random drops per device per hour (a drop closes the socket, so the will fires).",
)
@click.option(
    "--outage",
    "mean_outage_s",
    type=click.FloatRange(1),
    default=120.0,
    show_default=True,
    help="Mean seconds a randomly dropped device stays away.",
)
@click.option(
    "--event",
    "events",
    multiple=True,
    metavar="AT:ACTION:TARGET",
    help="Scripted fault: ACTION is power_cut, restore (a location), drop or return (a device).",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Makes metrics reproducible.")
@click.option(
    "--state-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where identities are kept [default: ESTATE_DATA_DIR/simulator.json].",
)
@click.option(
    "--broker",
    default=None,
    help="Broker URL devices connect to [default: ESTATE_MQTT_PUBLIC_URL or ESTATE_MQTT_URL].",
)
@click.option(
    "--report-every",
    type=click.FloatRange(1),
    default=30.0,
    show_default=True,
    help="Seconds between status lines on stderr.",
)
@click.option("--list-prisons", is_flag=True, help="Print the prison codes and names, then exit.")
def simulate(
    prisons: str,
    devices_per_prison: int,
    interval: float,
    kinds: str,
    duration: float | None,
    fault_rate: float,
    mean_outage_s: float,
    events: tuple[str, ...],
    seed: int,
    state_file: Path | None,
    broker: str | None,
    report_every: float,
    list_prisons: bool,
) -> None:
    if list_prisons:
        _list_prisons()
        return
    if not _split(prisons):
        raise click.UsageError("give --prisons, e.g. --prisons MDI,LEI (see --list-prisons)")
    script = sorted(parse_event(e) for e in events)
    kind_list = _split(kinds)
    unknown = [k for k in kind_list if k not in KIND_CODES]
    if unknown or not kind_list:
        raise click.BadParameter(
            f"unknown kind(s) {', '.join(unknown) or '(none)'}; "
            f"choose from {', '.join(KIND_CODES)}",
            param_hint="--kinds",
        )
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    from fleet.broker.dynsec import DynsecError
    from fleet.broker.urls import BrokerUrlError
    from fleet.cli.common import context
    from fleet.simulate.simulator import Simulator
    from fleet.simulate.state import SimulatorError

    ctx = context()
    try:
        ctx.issuer  # noqa: B018 - settings that cannot issue broker logins fail here, clearly
    except ValueError as exc:
        ctx.close()
        raise click.ClickException(str(exc)) from exc
    try:
        sim = Simulator(
            ctx.settings,
            _split(prisons),
            devices_per_prison,
            interval,
            seed,
            kinds=kind_list,
            fault_rate=fault_rate,
            mean_outage_s=mean_outage_s,
            state_file=state_file,
            broker_url=broker,
            context=ctx,
            progress=lambda message: click.echo(message, err=True),
        )
        placed = sim.prepare()
        _raise_file_limit(len(placed) + 256)
        sim.start()
    except (SimulatorError, BrokerUrlError, DynsecError) as exc:
        ctx.close()
        raise click.ClickException(str(exc)) from exc

    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        click.echo(f"{signal.Signals(signum).name}: stopping", err=True)
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    started = time.monotonic()
    next_report = started + report_every
    try:
        while not stop.is_set():
            now = time.monotonic()
            if duration is not None and now - started >= duration:
                break
            while script and script[0].at_s <= now - started:
                _apply(sim, script.pop(0))
            if now >= next_report:
                click.echo(sim.stats().line(), err=True)
                next_report += report_every
            stop.wait(0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sim.stop()
        ctx.close()
    final = sim.stats()
    click.echo(
        f"stopped: {final.births} births, {final.health} health reports, {final.offline} clean "
        f"offlines; simulator threads used {final.cpu_seconds:.1f}s CPU in {final.uptime_s:.0f}s",
        err=True,
    )


def _apply(sim: Simulator, event: ScriptedEvent) -> None:
    from fleet.simulate.state import SimulatorError

    try:
        if event.action == "power_cut":
            count = sim.power_cut(event.target)
            click.echo(f"power cut at {event.target}: {count} devices down", err=True)
        elif event.action == "restore":
            count = sim.restore(event.target)
            click.echo(f"power restored at {event.target}: {count} devices coming back", err=True)
        elif event.action == "drop":
            sim.drop_device(event.target)
            click.echo(f"dropped {event.target}", err=True)
        else:
            sim.restore_device(event.target)
            click.echo(f"{event.target} back", err=True)
    except SimulatorError as exc:
        click.echo(f"event {event.at_s:g}:{event.action}:{event.target} skipped: {exc}", err=True)
