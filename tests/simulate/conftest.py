"""Simulator tests: a fresh PostgreSQL database and the local Mosquitto (anonymous, 1883)."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from agents.protocol import Rejected, parse_health, parse_state, parse_topic, topic
from fleet.broker.urls import BrokerAddress, close_client, connect_client, parse_broker_url
from fleet.context import Context
from fleet.simulate.simulator import Simulator
from tests.services.postgres import migrated_context

MQTT_URL = os.environ.get("ESTATE_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")


@dataclass(frozen=True)
class Seen:
    """One message from a simulated device, parsed with the protocol's own validators."""

    device_id: str
    channel: str
    state: str  # for state messages: online/offline/lost
    boot: int
    seq: int
    metrics: dict[str, float]
    retained: bool
    at: float  # time.monotonic() on arrival


class Watcher:
    """Subscribes to every device's state and health and records what arrives."""

    def __init__(self, address: BrokerAddress) -> None:
        self.seen: list[Seen] = []
        self.rejected: list[tuple[str, str]] = []  # (device id, why), from any publisher
        self.changed = threading.Condition()
        subscribed = threading.Event()
        self.client = connect_client(
            address, f"sim-watch-{uuid.uuid4().hex[:8]}", on_message=self._on_message
        )
        self.client.on_subscribe = lambda *_args: subscribed.set()
        self.client.subscribe([(topic("+", "state"), 1), (topic("+", "health"), 1)])
        assert subscribed.wait(5), "no SUBACK from the broker"

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        now = time.monotonic()
        try:
            device_id, channel = parse_topic(msg.topic)
        except Rejected:
            return  # not a device topic at all
        try:
            if channel == "health":
                report = parse_health(device_id, bytes(msg.payload))
                seen = Seen(device_id, channel, "", 0, report.seq, report.metrics, msg.retain, now)
            elif channel == "state":
                state = parse_state(device_id, bytes(msg.payload))
                seen = Seen(device_id, channel, state.state, state.boot, 0, {}, msg.retain, now)
            else:
                return
        except Rejected as exc:
            with self.changed:
                self.rejected.append((device_id, str(exc)))
            return
        with self.changed:
            self.seen.append(seen)
            self.changed.notify_all()

    def live(self, ids: set[str], channel: str | None = None, since: float = 0.0) -> list[Seen]:
        """Messages published while watching (not retained replays) from the given devices."""
        with self.changed:
            return [
                s
                for s in self.seen
                if s.device_id in ids
                and not s.retained
                and s.at >= since
                and (channel is None or s.channel == channel)
            ]

    def rejected_from(self, ids: set[str]) -> list[tuple[str, str]]:
        with self.changed:
            return [r for r in self.rejected if r[0] in ids]

    def wait_until(self, predicate: Callable[[], bool], timeout_s: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout_s
        with self.changed:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.changed.wait(min(remaining, 0.5))
            return True

    def close(self) -> None:
        close_client(self.client)


def per_device(seen: list[Seen]) -> dict[str, list[Seen]]:
    grouped: dict[str, list[Seen]] = {}
    for s in seen:
        grouped.setdefault(s.device_id, []).append(s)
    return grouped


@pytest.fixture
def sim_context(pg_url: str, tmp_path: Path) -> Iterator[Context]:
    """PostgreSQL at head with prisons seeded; devices log in to the local anonymous broker."""
    ctx = migrated_context(pg_url, data_dir=tmp_path, mqtt_url=MQTT_URL, mqtt_credentials="none")
    yield ctx
    ctx.close()


@pytest.fixture
def watcher() -> Iterator[Watcher]:
    watching = Watcher(parse_broker_url(MQTT_URL))
    yield watching
    watching.close()


MakeSimulator = Callable[..., Simulator]


@pytest.fixture
def make_simulator(sim_context: Context) -> Iterator[MakeSimulator]:
    """Build simulators on the test database (2 prisons x 20 devices every 0.5 s by default);
    any still running at the end are stopped."""
    made: list[Simulator] = []

    def make(**overrides: Any) -> Simulator:
        options: dict[str, Any] = {
            "prisons": ["MDI", "LEI"],
            "devices_per_prison": 20,
            "interval": 0.5,
            "seed": 7,
            "context": sim_context,
        }
        options.update(overrides)
        sim = Simulator(options.pop("settings", sim_context.settings), **options)
        made.append(sim)
        return sim

    yield make
    for sim in made:
        sim.stop()
