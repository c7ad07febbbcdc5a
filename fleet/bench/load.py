"""Load for `estate bench ingest`: a health publisher and a bare consumer, each its own process.

Both are module-level functions so multiprocessing can start them with `spawn`, giving each
a core of its own rather than sharing the interpreter with what is being measured.
"""

from __future__ import annotations

import threading
import time
from array import array
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized

import orjson
import paho.mqtt.client as mqtt

from agents.protocol import PREFIX
from fleet.broker.urls import OnMessage, make_client, parse_broker_url

CLIENT_BACKLOG = 1000


@dataclass(frozen=True, slots=True)
class PublishPlan:
    broker_url: str
    device_ids: list[str]
    seconds: float
    rate: float = 0.0  # reports per second; 0 = as fast as the broker takes them
    window: int = 0  # most reports published but not yet visible; 0 = no limit
    topic_root: str = ""
    first_seq: int = 1


@dataclass(slots=True)
class PublishLog:
    """Round k publishes seq first_seq + k to every device, in device order.

    `times[k * devices + i]` is when device i's report of round k was handed to the client.
    """

    rounds: int = 0
    published: int = 0
    times: array[float] = field(default_factory=lambda: array("d"))


def _connect(broker_url: str, client_id: str, on_message: OnMessage | None = None) -> mqtt.Client:
    address = parse_broker_url(broker_url)
    # paho rescans its whole outgoing queue on every PUBACK when the window is large, so its
    # default window of 20 publishes fastest.
    client = make_client(address, client_id)
    if on_message is not None:
        client.on_message = on_message
    client.connect(address.host, address.port, 60)
    client.loop_start()
    return client


def payload(seq: int, now: float) -> bytes:
    """A realistic health report of about 200 bytes stamped with its publish time."""
    return orjson.dumps(
        {
            "seq": seq,
            "ts": now,
            "metrics": {
                "battery": 20 + seq % 80,
                "cpu": 3.5 + seq % 50,
                "memory": 41.0,
                "storage": 63.2,
                "temperature": 38.5,
                "uptime": 86400 + seq * 30,
                "wifi_rssi": -61,
            },
        }
    )


def publish_health(
    plan: PublishPlan,
    client_id: str,
    visible: Synchronized[int] | None,
    sent: Synchronized[int],
    results: Connection,
) -> None:
    """Publish whole rounds (QoS 1) until `plan.seconds` pass; send the PublishLog back."""
    acked = 0

    def on_publish(*_args: object) -> None:
        nonlocal acked
        acked += 1

    client = _connect(plan.broker_url, client_id)
    client.on_publish = on_publish
    topics = [f"{plan.topic_root}{PREFIX}/{d}/health" for d in plan.device_ids]
    log = PublishLog()
    started = time.monotonic()
    try:
        while time.monotonic() - started < plan.seconds:
            seq = plan.first_seq + log.rounds
            for topic in topics:
                # Never more than CLIENT_BACKLOG ahead of the broker's acknowledgements.
                while log.published - acked > CLIENT_BACKLOG:
                    time.sleep(0.0005)
                if plan.window and visible is not None:
                    while log.published - visible.value > plan.window:
                        time.sleep(0.001)
                if plan.rate:
                    ahead = started + log.published / plan.rate - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
                now = time.time()
                client.publish(topic, payload(seq, now), qos=1)
                log.times.append(now)
                log.published += 1
                if not log.published % 500:
                    sent.value = acked
            log.rounds += 1
        deadline = time.monotonic() + 30
        while acked < log.published and time.monotonic() < deadline:
            time.sleep(0.01)
        sent.value = acked
    finally:
        client.disconnect()
        client.loop_stop()
        results.send(log)
        results.close()


def bare_consumer(
    broker_url: str, topic_filter: str, client_id: str, seconds: float, results: Connection
) -> None:
    """Subscribe at QoS 1, decode every payload with orjson, and report messages per second."""
    received = 0
    first = last = 0.0

    def on_message(_c: mqtt.Client, _ud: object, message: mqtt.MQTTMessage) -> None:
        nonlocal received, first, last
        orjson.loads(message.payload)
        last = time.monotonic()
        if not received:
            first = last
        received += 1

    subscribed = threading.Event()
    client = _connect(broker_url, client_id, on_message)
    client.on_subscribe = lambda *_args: subscribed.set()
    client.subscribe(topic_filter, qos=1)
    subscribed.wait(10)
    results.send("ready")
    time.sleep(seconds)
    client.disconnect()
    client.loop_stop()
    rate = received / (last - first) if received > 1 and last > first else 0.0
    results.send((received, rate))
    results.close()
