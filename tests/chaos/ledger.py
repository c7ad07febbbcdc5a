"""What was published, and the exact accounting every chaos case ends with.

A report counts as published once the broker has acknowledged it (PUBACK) as routed to a
subscriber; one it answers "no matching subscribers" (MQTT 5) reached nobody and is sent again.
Accounting then demands, per device: the latest state in PostgreSQL is the newest report, and
the TSDB holds every published report exactly once (the same timestamps, no more, no fewer).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import select

from fleet.broker.urls import BrokerAddress, make_client
from fleet.context import Context
from fleet.db import transaction
from fleet.devices.models import DeviceState
from tests.ingest.conftest import wait_for
from tests.services.victoria import VictoriaServer

Key = tuple[str, int]  # (device id, seq)
# MQTT 5 PUBACK reason 0x10: the broker accepted the message but no subscription matched it.
NO_MATCHING_SUBSCRIBERS = 16


@dataclass
class Report:
    device: str
    seq: int
    ts: float

    @property
    def payload(self) -> bytes:
        metrics = {"battery": float(self.seq % 100), "cpu": 1.0}
        return orjson.dumps({"seq": self.seq, "ts": self.ts, "metrics": metrics})

    @property
    def ts_ms(self) -> int:
        """The TSDB's millisecond timestamp: ingest writes nanoseconds, the TSDB truncates."""
        return round(self.ts * 1e9) // 1_000_000

    @property
    def topic(self) -> str:
        return f"estate/v1/dev/{self.device}/health"


@dataclass
class Ledger:
    """Reports handed to the broker and the ones it acknowledged."""

    reports: dict[Key, Report] = field(default_factory=dict)
    acked: set[Key] = field(default_factory=set)
    refused: list[str] = field(default_factory=list)
    unrouted: int = 0  # PUBACKs saying no subscriber matched; those reports were sent again

    def newest(self, device: str) -> Report:
        return max((r for r in self.reports.values() if r.device == device), key=lambda r: r.seq)

    def timestamps_ms(self, device: str) -> list[int]:
        return sorted(r.ts_ms for r in self.reports.values() if r.device == device)


class ReportStream:
    """Publishes seq 1..per_device for each device at QoS 1 and a steady rate, surviving broker
    restarts (paho reconnects and resends; anything still unacknowledged is sent again)."""

    def __init__(
        self, address: BrokerAddress, devices: list[str], per_device: int, *, rate: float
    ) -> None:
        self.devices = devices
        self.per_device = per_device
        self.rate = rate
        self.base = float(int(time.time()) - 3 * 3600)
        self.ledger = Ledger()
        self.sent = 0
        self.client = make_client(address, f"chaos-pub-{uuid.uuid4().hex[:8]}")
        self.client.max_inflight_messages_set(500)
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.client.on_publish = self._on_publish
        self._lock = threading.Lock()
        self._inflight: dict[int, Key] = {}
        self._early: dict[int, Any] = {}
        self._thread = threading.Thread(target=self._run, name="chaos-stream", daemon=True)
        self._stopped = threading.Event()
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 600
        self.client.connect(address.host, address.port, clean_start=False, properties=properties)
        self.client.loop_start()

    def ts(self, seq: int) -> float:
        return self.base + seq

    def publish(self, report: Report) -> None:
        key = (report.device, report.seq)
        with self._lock:
            self.ledger.reports[key] = report
        # Not under our lock: paho calls on_publish holding its own, which publish() needs.
        info = self.client.publish(report.topic, report.payload, qos=1)
        with self._lock:
            if info.mid in self._early:  # acknowledged before we got here
                self._settle(key, self._early.pop(info.mid))
            else:
                self._inflight[info.mid] = key

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        with self._lock:
            key = self._inflight.pop(mid, None)
            if key is None:
                self._early[mid] = reason
            else:
                self._settle(key, reason)

    def _settle(self, key: Key, reason: Any) -> None:
        code = getattr(reason, "value", 0)
        if code == NO_MATCHING_SUBSCRIBERS:
            # Accepted but routed to nobody (ingest not subscribed yet): not delivered, so a
            # device that reads its PUBACK keeps the report and sends it again.
            self.ledger.unrouted += 1
        elif getattr(reason, "is_failure", False):
            self.ledger.refused.append(f"{key}: {reason}")
        else:
            self.ledger.acked.add(key)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        started = time.monotonic()
        for seq in range(1, self.per_device + 1):
            for device in self.devices:
                if self._stopped.is_set():
                    return
                self.publish(Report(device, seq, self.ts(seq)))
                self.sent += 1
                delay = started + self.sent / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)

    def wait_sent(self, count: int, timeout_s: float = 60) -> None:
        wait_for(lambda: self.sent >= count, timeout_s, f"{count} reports sent")

    def finish(self, timeout_s: float = 90, resend_after_s: float = 3) -> Ledger:
        """Wait for the whole stream to be acknowledged, resending what the broker never got."""
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the stream did not finish publishing"
        deadline = time.monotonic() + timeout_s
        resend_at = time.monotonic() + resend_after_s
        while True:
            with self._lock:
                missing = [k for k in self.ledger.reports if k not in self.ledger.acked]
                waiting = set(self._inflight.values())
            if not missing:
                break
            assert time.monotonic() < deadline, f"{len(missing)} reports never acknowledged"
            if time.monotonic() >= resend_at:
                for key in missing:
                    if key not in waiting:
                        self.publish(self.ledger.reports[key])
                resend_at = time.monotonic() + resend_after_s
            time.sleep(0.1)
        assert not self.ledger.refused, self.ledger.refused[:5]
        return self.ledger

    def close(self) -> None:
        self._stopped.set()
        self.client.disconnect()
        self.client.loop_stop()


def latest_states(ctx: Context, devices: list[str]) -> dict[str, tuple[int, float | None]]:
    """seq and report timestamp of each device's latest state row."""
    with transaction(ctx.sessions) as session:
        rows = session.execute(
            select(DeviceState.device_id, DeviceState.seq, DeviceState.last_report_ts).where(
                DeviceState.device_id.in_(devices)
            )
        ).all()
    return {d: (seq, ts.timestamp() if ts else None) for d, seq, ts in rows}


def tsdb_timestamps(
    victoria: VictoriaServer, devices: list[str], metric: str = "battery"
) -> dict[str, list[int]]:
    """Every stored sample timestamp (ms) of one health metric's series, per device."""
    wanted = set(devices)
    found: dict[str, list[int]] = {d: [] for d in devices}
    for series in victoria.export(f'{{__name__="device_health_{metric}"}}'):
        device = series["metric"].get("device")
        if device in wanted:
            found[device] += series["timestamps"]
    return {d: sorted(ts) for d, ts in found.items()}


def _seqs(ledger: Ledger, device: str, timestamps: set[int]) -> str:
    seqs = sorted(
        r.seq for r in ledger.reports.values() if r.device == device and r.ts_ms in timestamps
    )
    return f"{len(seqs)} of them, seq {seqs[0]}..{seqs[-1]}" if seqs else "none"


def assert_exact(
    ctx: Context,
    victoria: VictoriaServer,
    ledger: Ledger,
    devices: list[str],
    *,
    series: str = "battery",
    timeout_s: float = 60,
) -> None:
    """Latest state is each device's newest report; the TSDB holds every report exactly once."""
    newest = {d: ledger.newest(d) for d in devices}

    def _latest_is_newest() -> bool:
        states = latest_states(ctx, devices)
        return all(
            states[d][0] == r.seq and abs((states[d][1] or 0) - r.ts) < 1e-3
            for d, r in newest.items()
        )

    wait_for(_latest_is_newest, timeout_s, "every device's latest state to be its newest report")
    victoria.settle()
    expected = {d: ledger.timestamps_ms(d) for d in devices}
    deadline = time.monotonic() + timeout_s
    while (stored := tsdb_timestamps(victoria, devices, series)) != expected:
        if time.monotonic() > deadline:
            diff = {
                d: {
                    "stored": len(stored[d]),
                    "expected": len(expected[d]),
                    "missing_seqs": _seqs(ledger, d, set(expected[d]) - set(stored[d])),
                    "extra_or_doubled": len(stored[d]) - len(set(stored[d]) & set(expected[d])),
                }
                for d in devices
                if stored[d] != expected[d]
            }
            raise AssertionError(f"the TSDB does not hold each report exactly once: {diff}")
        time.sleep(0.5)
    total = sum(len(v) for v in stored.values())
    assert total == len(ledger.reports) == len(ledger.acked)
