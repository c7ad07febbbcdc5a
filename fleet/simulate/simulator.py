"""Run a simulated estate in-process: `Simulator(...).start()`, fault injection, `stop()`."""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from types import TracebackType

import psutil

from agents.protocol import load_public_key
from fleet.broker.embedded import protocol_for
from fleet.broker.urls import parse_broker_url
from fleet.context import Context
from fleet.settings import Settings
from fleet.signing import signing_public_key
from fleet.simulate.commands import SimCommands
from fleet.simulate.device import CONNECTING, ONLINE, ShardCounters, SimDevice
from fleet.simulate.enrol import DEFAULT_KINDS, PlacedDevice, Progress, prepare_estate
from fleet.simulate.metrics import DeviceModel
from fleet.simulate.network import Shard
from fleet.simulate.state import (
    STATE_FILE_NAME,
    SimIdentity,
    SimulatorError,
    StateFile,
    database_label,
)

log = logging.getLogger(__name__)

SAVE_EVERY_S = 30.0
BOOT_RESERVE = 64
DEVICES_PER_SHARD = 1000
MAX_SHARDS = 4
COMMAND_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class DeviceInfo:
    device_id: str
    kind: str
    prison: str
    location: str | None
    status: str


@dataclass(frozen=True)
class SimulatorStats:
    """Counters since start, plus what the simulator costs the machine."""

    devices: int
    online: int
    connecting: int
    down: int
    births: int
    health: int
    offline: int
    drops: int
    random_drops: int
    refusals: int
    connect_failures: int
    publish_failures: int
    errors: int
    last_error: str
    uptime_s: float
    cpu_seconds: float  # used by the simulator's own threads
    rss_bytes: int  # of the whole process

    @property
    def cpu_percent(self) -> float:
        return 100 * self.cpu_seconds / self.uptime_s if self.uptime_s else 0.0

    def line(self) -> str:
        text = (
            f"online {self.online}/{self.devices} (connecting {self.connecting}, down "
            f"{self.down}); births {self.births}, health {self.health}, drops {self.drops}, "
            f"refused {self.refusals}; cpu {self.cpu_percent:.1f}% of a core, "
            f"rss {self.rss_bytes / 2**20:.0f} MiB"
        )
        if self.online < self.devices and self.last_error:
            text += f"; last problem: {self.last_error}"
        return text


class Simulator:
    """Simulated devices of real prisons, each enrolled and logged in to the broker as itself."""

    def __init__(
        self,
        settings: Settings,
        prisons: Sequence[str],
        devices_per_prison: int,
        interval: float = 30.0,
        seed: int = 0,
        *,
        kinds: Sequence[str] = DEFAULT_KINDS,
        fault_rate: float = 0.0,
        mean_outage_s: float = 120.0,
        state_file: Path | None = None,
        broker_url: str | None = None,
        context: Context | None = None,
        progress: Progress | None = None,
        shards: int | None = None,
        connect_rate: float = 200.0,
        keepalive_s: int = 60,
    ) -> None:
        if not prisons:
            raise SimulatorError("name at least one prison code, e.g. MDI")
        if devices_per_prison < 1:
            raise SimulatorError("devices per prison must be at least 1")
        if interval <= 0 or connect_rate <= 0 or mean_outage_s <= 0 or fault_rate < 0:
            raise SimulatorError(
                "interval, connect rate and outage must be positive and the fault rate not negative"
            )
        self.settings = settings
        self.prisons = list(prisons)
        self.devices_per_prison = devices_per_prison
        self.interval = interval
        self.seed = seed
        self.kinds = list(kinds)
        self.fault_rate = fault_rate
        self.mean_outage_s = mean_outage_s
        self.broker_url = broker_url or settings.device_mqtt_url
        self.progress = progress
        self.connect_rate = connect_rate
        self.keepalive_s = keepalive_s
        self._shard_count = shards
        self._own_context = context is None
        self.context = context or Context(settings)
        path = state_file or settings.data_dir / STATE_FILE_NAME
        self.state = StateFile(path, database_label(settings.effective_database_url))
        # Enough seq numbers for two save periods, so a killed process never reuses one.
        self.seq_reserve = max(100, math.ceil(2 * SAVE_EVERY_S / interval) + 10)
        self._placed: list[PlacedDevice] | None = None
        self._devices: dict[str, SimDevice] = {}
        self._shards: list[Shard] = []
        self._shard_of: dict[str, Shard] = {}
        self._save_now = threading.Event()
        self._saver: threading.Thread | None = None
        self._running = False
        self._started_at = 0.0
        self._stopped_at = 0.0

    # --- lifecycle ---------------------------------------------------------------------------

    def prepare(self) -> list[PlacedDevice]:
        """Enrol whatever devices are missing (idempotent); done by start() if not called."""
        if self._placed is None:
            self.state.load()
            self._placed = prepare_estate(
                ctx=self.context,
                state=self.state,
                prisons=self.prisons,
                devices_per_prison=self.devices_per_prison,
                kinds=self.kinds,
                progress=self.progress,
            )
        return self._placed

    def start(self) -> None:
        """Connect every device (ramped at connect_rate per second) and start reporting."""
        if self._running:
            return
        placed = self.prepare()
        base = parse_broker_url(self.broker_url)
        protocol = protocol_for(self.settings)
        devices = []
        for p in placed:
            model = DeviceModel(p.ident.device_id, p.ident.kind, self.seed)
            model.restore(p.ident.model)
            address = base.with_credentials(p.ident.device_id, p.ident.password)
            devices.append(SimDevice(p.ident, p.places, model, address))
        self._devices = {d.device_id: d for d in devices}
        self.state.save(seq_reserve=self.seq_reserve, boot_reserve=BOOT_RESERVE)
        count = self._shard_count or min(
            MAX_SHARDS, max(1, math.ceil(len(devices) / DEVICES_PER_SHARD))
        )
        command_key = load_public_key(signing_public_key(self.settings))
        self._shards = [
            Shard(
                f"shard{i}",
                devices[i::count],
                protocol=protocol,
                interval_s=self.interval,
                keepalive_s=self.keepalive_s,
                fault_rate_per_h=self.fault_rate,
                mean_outage_s=self.mean_outage_s,
                seed=self.seed,
                on_counters_moved=self._counters_moved,
                commands=SimCommands(command_key),
            )
            for i in range(count)
        ]
        self._shard_of = {d.device_id: s for s in self._shards for d in s.devices}
        schedules = self._schedules(devices)
        self._running = True
        self._started_at = time.monotonic()
        self._stopped_at = 0.0
        self._saver = threading.Thread(target=self._save_loop, name="simulate-saver", daemon=True)
        self._saver.start()
        for shard in self._shards:
            shard.start(schedules[shard.name])
        log.info(
            "simulating %d devices on %s every %gs with %d shard thread(s)",
            len(devices),
            base.redacted(),
            self.interval,
            count,
        )

    def _schedules(
        self, devices: list[SimDevice]
    ) -> dict[str, list[tuple[SimDevice, float, float]]]:
        """Connections ramp up at connect_rate; reports are then spread evenly over the interval."""
        now = time.monotonic()
        ramp = len(devices) / self.connect_rate
        order = list(range(len(devices)))
        random.Random(self.seed).shuffle(order)
        jitter = random.Random(self.seed + 1)
        slot = self.interval / max(1, len(devices))
        plan: dict[str, list[tuple[SimDevice, float, float]]] = {s.name: [] for s in self._shards}
        for i, dev in enumerate(devices):
            first_health = now + ramp + 1.0 + (order[i] + jitter.random()) * slot
            plan[self._shard_of[dev.device_id].name].append(
                (dev, now + i / self.connect_rate, first_health)
            )
        return plan

    def stop(self, timeout_s: float = 10.0) -> None:
        """Publish `offline` for each device, disconnect, and record counters exactly."""
        if not self._running:
            if self._own_context:
                self.context.close()
            return
        self._running = False
        stoppers = [
            threading.Thread(target=s.stop, args=(timeout_s,), name=f"stop-{s.name}")
            for s in self._shards
        ]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join()
        self._stopped_at = time.monotonic()
        self._save_now.set()
        if self._saver is not None:
            self._saver.join()
        for dev in self._devices.values():
            dev.ident.model = dev.model.snapshot()
        self.state.save()
        if self._own_context:
            self.context.close()
        log.info("simulator stopped; identities saved to %s", self.state.path)

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _counters_moved(self, ident: SimIdentity) -> None:
        if self.state.needs_save(
            ident, seq_margin=self.seq_reserve // 2, boot_margin=BOOT_RESERVE // 2
        ):
            self._save_now.set()

    def _save_loop(self) -> None:
        while self._running:
            self._save_now.wait(SAVE_EVERY_S)
            self._save_now.clear()
            if not self._running:
                return
            try:
                self.state.save(seq_reserve=self.seq_reserve, boot_reserve=BOOT_RESERVE)
            except OSError:
                log.exception("cannot save simulator state to %s; will retry", self.state.path)

    # --- fault injection ---------------------------------------------------------------------

    def _matching(self, location_path: str) -> list[SimDevice]:
        path = location_path.strip().upper()
        found = [d for d in self._devices.values() if path in d.places]
        if not found:
            examples = sorted({p for d in list(self._devices.values())[:50] for p in d.places})[:6]
            raise SimulatorError(
                f"no simulated device is at or under {location_path!r}; give a prison, wing, "
                f"landing or cell code such as {', '.join(examples) or 'MDI-1-1'}"
            )
        return found

    def _device(self, device_id: str) -> SimDevice:
        dev = self._devices.get(device_id)
        if dev is None:
            raise SimulatorError(f"{device_id!r} is not one of the simulated devices")
        return dev

    def _each(self, devices: list[SimDevice], action: str, arg: float | None) -> None:
        """Run a drop or restore on the shards owning the devices; return once they have."""
        if not self._running:
            raise SimulatorError("the simulator is not running: call start() first")
        by_shard: dict[Shard, list[SimDevice]] = {}
        for dev in devices:
            by_shard.setdefault(self._shard_of[dev.device_id], []).append(dev)
        done = []
        for shard, group in by_shard.items():
            finished = threading.Event()

            def run(
                shard: Shard = shard,
                group: list[SimDevice] = group,
                finished: threading.Event = finished,
            ) -> None:
                try:
                    for dev in group:
                        if action == "drop":
                            shard.drop(dev, arg)
                        else:
                            shard.restore(dev, arg or 0.0)
                finally:
                    finished.set()

            shard.submit(run)
            done.append(finished)
        for finished in done:
            if not finished.wait(COMMAND_TIMEOUT_S):
                log.warning("a shard took over %gs to apply %s", COMMAND_TIMEOUT_S, action)

    def power_cut(self, location_path: str) -> int:
        """Every device at or under the location goes at once (wills fire) until restore()."""
        devices = self._matching(location_path)
        self._each(devices, "drop", None)
        return len(devices)

    def restore(self, location_path: str) -> int:
        """Bring back every dropped device at or under the location, with births."""
        devices = self._matching(location_path)
        self._each(devices, "restore", min(self.interval, 10.0))
        return len(devices)

    def drop_device(self, device_id: str, down_for_s: float | None = None) -> None:
        """One device goes silent without a clean disconnect; back after down_for_s if given."""
        self._each([self._device(device_id)], "drop", down_for_s)

    def restore_device(self, device_id: str) -> None:
        self._each([self._device(device_id)], "restore", 0.0)

    # --- observation -------------------------------------------------------------------------

    def devices(self) -> list[DeviceInfo]:
        return [
            DeviceInfo(d.device_id, d.ident.kind, d.ident.prison, d.ident.location, d.status)
            for d in self._devices.values()
        ]

    def wait_online(self, timeout_s: float) -> bool:
        """Wait until every device not deliberately down is online."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(d.status == ONLINE for d in self._devices.values() if d.wanted):
                return True
            time.sleep(0.05)
        return False

    def stats(self) -> SimulatorStats:
        totals = ShardCounters()
        for shard in self._shards:
            for f in fields(ShardCounters):
                setattr(totals, f.name, getattr(totals, f.name) + getattr(shard.counters, f.name))
        statuses = [d.status for d in self._devices.values()]
        online = statuses.count(ONLINE)
        connecting = statuses.count(CONNECTING)
        process = psutil.Process()
        cpu = sum(s.cpu_seconds for s in self._shards)
        return SimulatorStats(
            devices=len(statuses),
            online=online,
            connecting=connecting,
            down=len(statuses) - online - connecting,
            last_error=next((s.last_error for s in self._shards if s.last_error), ""),
            uptime_s=(self._stopped_at or time.monotonic()) - self._started_at
            if self._started_at
            else 0.0,
            cpu_seconds=cpu,
            rss_bytes=process.memory_info().rss,
            **{f.name: getattr(totals, f.name) for f in fields(ShardCounters)},
        )
