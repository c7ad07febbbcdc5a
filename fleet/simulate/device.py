"""One simulated device's live state, what it publishes, and a shard's counters."""

from __future__ import annotations

import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from agents.protocol import dumps
from fleet.broker.urls import BrokerAddress
from fleet.simulate.enrol import SIM_AGENT_VERSION
from fleet.simulate.metrics import DeviceModel
from fleet.simulate.state import SimIdentity

DOWN, CONNECTING, ONLINE, CLOSING = "down", "connecting", "online", "closing"


class SimDevice:
    """One simulated device's live state; touched only by the thread of the shard owning it."""

    __slots__ = (
        "address",
        "backoff",
        "client",
        "connecting_since",
        "ident",
        "last_error",
        "model",
        "places",
        "status",
        "token",
        "wanted",
    )

    def __init__(
        self, ident: SimIdentity, places: frozenset[str], model: DeviceModel, address: BrokerAddress
    ) -> None:
        self.ident = ident
        self.places = places
        self.model = model
        self.address = address
        self.client: mqtt.Client | None = None
        self.status = DOWN
        self.wanted = True  # False while dropped, cut off or stopped on purpose
        self.token = 0  # bumped on every drop/restore so stale timers do nothing
        self.backoff = 1.0
        self.connecting_since = 0.0
        self.last_error = ""

    @property
    def device_id(self) -> str:
        return self.ident.device_id

    def next_health_payload(self) -> bytes:
        """The next health report: seq moves on, metrics advance to now."""
        now = time.time()
        self.ident.seq += 1
        return dumps({"seq": self.ident.seq, "ts": now, "metrics": self.model.step(now)})

    def state_payload(self, state: str) -> bytes:
        return dumps(
            {
                "state": state,
                "boot": self.ident.boot,
                "agent": SIM_AGENT_VERSION,
                "config_version": 0,
                "ts": time.time(),
            }
        )


@dataclass
class ShardCounters:
    """What one shard has done since it started (read, never reset, by Simulator.stats)."""

    births: int = 0
    health: int = 0
    offline: int = 0
    drops: int = 0
    random_drops: int = 0
    refusals: int = 0
    connect_failures: int = 0
    publish_failures: int = 0
    errors: int = 0
