"""Load for `estate bench ingest`: a health publisher and a bare consumer, each its own process.

Both are module-level functions so multiprocessing can start them with `spawn`, giving each
a core of its own rather than sharing the interpreter with what is being measured.
"""

from __future__ import annotations

import contextlib
import queue
import time
from array import array
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized

import orjson

from agents.protocol import PREFIX
from fleet.bench.wire import WirePublisher
from fleet.broker.urls import parse_broker_url
from fleet.ingest.classify import Inbound
from fleet.ingest.consumer import ReportConsumer
from fleet.settings import Settings

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
    topic_root: str,
    client_id: str,
    seconds: float,
    progress: Synchronized[int],
    results: Connection,
) -> None:
    """Read at QoS 1 with ingest's own MQTT reader, decode each payload with orjson and
    acknowledge it at once; report messages per second.

    Everything ingest does beyond this (parsing, SQL, the TSDB, acknowledging after durable
    writes) is the gap between the two figures. `progress` follows the count, so the publisher
    holds the same window ahead of this consumer as it holds ahead of ingest.
    """
    settings = Settings(mqtt_url=broker_url)
    inbox: queue.SimpleQueue[Inbound] = queue.SimpleQueue()
    consumer = ReportConsumer(
        settings,
        client_id=client_id,
        shared=False,
        inbox=inbox,
        topic_root=topic_root,
        session_expiry_s=0,
    )
    if not consumer.start() or not consumer.wait_ready(10):
        results.send("the bare consumer could not subscribe")
        return
    results.send("ready")
    received = 0
    first = last = 0.0
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            try:
                batch = [inbox.get(timeout=0.1)]
            except queue.Empty:
                continue
            with contextlib.suppress(queue.Empty):
                while len(batch) < 2000:
                    batch.append(inbox.get_nowait())
            for message in batch:
                orjson.loads(message.payload)
            consumer.ack(batch)
            last = time.monotonic()
            if not received:
                first = last
            received += len(batch)
            progress.value = received
    finally:
        consumer.stop()
    rate = received / (last - first) if received > 1 and last > first else 0.0
    results.send((received, rate))
    results.close()
