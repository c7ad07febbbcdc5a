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
from fleet.bench.wire import WirePublisher
from fleet.broker.urls import OnMessage, make_client, parse_broker_url

CLIENT_BACKLOG = 4000
# Reports per write: small enough that a rate-limited run stays smooth.
WRITE_CHUNK = 50


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
    client = WirePublisher(parse_broker_url(plan.broker_url), client_id)
    topics = [f"{plan.topic_root}{PREFIX}/{d}/health".encode() for d in plan.device_ids]
    log = PublishLog()
    started = time.monotonic()
    try:
        while time.monotonic() - started < plan.seconds:
            seq = plan.first_seq + log.rounds
            for topic in topics:
                # A rate is kept message by message: reports of one device a round apart must
                # not leave in one burst (the TSDB keeps one sample per series per millisecond).
                if plan.rate or not log.published % WRITE_CHUNK:
                    _throttle(client, plan, log, visible, started)
                    sent.value = client.acked
                now = time.time()
                client.send(topic, payload(seq, now))
                log.times.append(now)
                log.published += 1
            log.rounds += 1
        if not client.wait_acked(30):
            raise RuntimeError(f"broker acknowledged {client.acked} of {client.sent} reports")
        sent.value = client.acked
    finally:
        client.close()
        results.send(log)
        results.close()


def _throttle(
    client: WirePublisher,
    plan: PublishPlan,
    log: PublishLog,
    visible: Synchronized[int] | None,
    started: float,
) -> None:
    """Write what is queued, then wait while too far ahead of acks, `visible` or the rate."""
    client.flush()
    client.poll(0)
    while log.published - client.acked > CLIENT_BACKLOG:
        client.poll(0.01)
    if plan.window and visible is not None:
        while log.published - visible.value > plan.window:
            client.poll(0.001)
    if plan.rate:
        due = started + log.published / plan.rate
        while (ahead := due - time.monotonic()) > 0:
            client.poll(ahead)


def bare_consumer(
    broker_url: str,
    topic_filter: str,
    client_id: str,
    seconds: float,
    progress: Synchronized[int],
    results: Connection,
) -> None:
    """Subscribe at QoS 1, decode every payload with orjson, and report messages per second.

    `progress` follows the count, so the publisher can hold the same window ahead of this
    consumer as it holds ahead of ingest.
    """
    received = 0
    first = last = 0.0

    def on_message(_c: mqtt.Client, _ud: object, message: mqtt.MQTTMessage) -> None:
        nonlocal received, first, last
        orjson.loads(message.payload)
        last = time.monotonic()
        if not received:
            first = last
        received += 1
        if not received % 100:
            progress.value = received

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
