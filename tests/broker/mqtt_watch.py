"""Test-side MQTT clients that record what the broker sends them, and a free-port finder."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTProtocolVersion

from fleet.broker.urls import BrokerAddress, Will, close_client, connect_client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Watched:
    """A connected client plus every message, acknowledgement and disconnect it saw."""

    def __init__(self) -> None:
        self.client: mqtt.Client | None = None
        self.messages: list[mqtt.MQTTMessage] = []
        self.subacks: dict[int, list[str]] = {}
        self.pubacks: dict[int, str] = {}
        self.disconnects: list[str] = []
        self.changed = threading.Condition()

    # paho callbacks (network thread)
    def on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        self._note(lambda: self.messages.append(message))

    def on_subscribe(self, _c: mqtt.Client, _u: Any, mid: int, codes: Any, _p: Any) -> None:
        self._note(lambda: self.subacks.__setitem__(mid, [str(c) for c in codes]))

    def on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        # MQTT 5 also acknowledges with "No matching subscribers", which is still a success.
        outcome = str(reason) if reason.is_failure else "accepted"
        self._note(lambda: self.pubacks.__setitem__(mid, outcome))

    def on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self._note(lambda: self.disconnects.append(str(reason)))

    def _note(self, change: Callable[[], object]) -> None:
        with self.changed:
            change()
            self.changed.notify_all()

    # test-side API
    @property
    def paho(self) -> mqtt.Client:
        assert self.client is not None
        return self.client

    def wait_until(self, predicate: Callable[[], bool], timeout_s: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout_s
        with self.changed:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.changed.wait(remaining)
            return True

    def subscribe(self, topic: str, qos: int = 1) -> list[str]:
        """Subscribe and return the broker's reason codes."""
        _rc, mid = self.paho.subscribe(topic, qos)
        assert mid is not None, f"could not send SUBSCRIBE for {topic}"
        assert self.wait_until(lambda: mid in self.subacks), f"no SUBACK for {topic}"
        return self.subacks[mid]

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> str:
        """Publish and return "accepted" or the broker's refusal (MQTT 5 only)."""
        info = self.paho.publish(topic, payload, qos=qos, retain=retain)
        assert self.wait_until(lambda: info.mid in self.pubacks), f"no PUBACK for {topic}"
        return self.pubacks[info.mid]

    def received(self, topic: str, payload: bytes) -> bool:
        with self.changed:
            return any(m.topic == topic and m.payload == payload for m in self.messages)

    def topics(self) -> list[str]:
        with self.changed:
            return [m.topic for m in self.messages]

    def close(self) -> None:
        if self.client is not None:
            close_client(self.client)


def watch(
    address: BrokerAddress,
    client_id: str,
    *,
    protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5,
    will: Will | None = None,
    keepalive: int = 30,
    clean_start: bool = True,
) -> Watched:
    """Connect a client whose callbacks record into a Watched."""
    watched = Watched()
    watched.client = connect_client(
        address,
        client_id,
        protocol=protocol,
        will=will,
        keepalive=keepalive,
        clean_start=clean_start,
        on_message=watched.on_message,
        on_disconnect=watched.on_disconnect,
    )
    watched.client.on_subscribe = watched.on_subscribe
    watched.client.on_publish = watched.on_publish
    return watched
