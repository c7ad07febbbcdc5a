"""Reports the broker took but delivered to no one stay buffered and are sent again."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
from paho.mqtt.client import MQTTMessageInfo
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from agents.backoff import Backoff
from agents.buffer import ReportBuffer
from agents.protocol import topic
from agents.runner import Agent
from agents.sender import NO_MATCHING_SUBSCRIBERS, ReportSender, undelivered
from agents.store import open_database
from fleet.broker.embedded import EmbeddedBroker
from tests.agents.support import Recorder, free_port, make_identity
from tests.e2e.harness import wait_for

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from tests.agents.support import PrivateBroker


def test_reports_published_while_nobody_subscribes_arrive_once_someone_does(
    private_broker: PrivateBroker,
    make_agent: Callable[..., Agent],
    device_id: str,
    signing_key: Ed25519PrivateKey,
) -> None:
    private_broker.start()
    health = topic(device_id, "health")
    agent = make_agent(make_identity(device_id, signing_key, port=private_broker.port))
    assert agent.wait_connected(10)
    # Nobody reads health yet: the broker answers each report "no matching subscribers".
    wait_for(lambda: agent.last_seq >= 5, 10, "five reports")
    unheard = agent.last_seq
    assert agent.pending_reports >= 5, "reports nobody received are kept in the buffer"

    reader = Recorder(private_broker.port)
    try:
        reader.subscribe(health)

        def seqs() -> set[int]:
            return {orjson.loads(m.payload)["seq"] for m in list(reader.messages)}

        wanted = set(range(1, unheard + 6))
        wait_for(lambda: wanted <= seqs(), 30, f"reports 1..{unheard + 5}")
        assert agent.dropped_reports == 0
    finally:
        reader.close()


def test_an_agent_falls_back_to_mqtt_311_on_a_broker_without_mqtt_5(
    make_agent: Callable[..., Agent], device_id: str, signing_key: Ed25519PrivateKey
) -> None:
    port = free_port()
    with EmbeddedBroker("127.0.0.1", port):  # `estate demo`'s broker speaks only 3.1.1
        reader = Recorder(port)
        agent: Agent | None = None
        try:
            reader.subscribe(topic(device_id, "health"))
            agent = make_agent(make_identity(device_id, signing_key, port=port))
            assert agent.wait_connected(30)
            wait_for(lambda: len(reader.messages) >= 3, 15, "three reports")
        finally:
            # Clients leave before the broker does: amqtt's shutdown waits on each connection,
            # and one still publishing five reports a second can outlast its timeout.
            if agent is not None:
                agent.stop()
            reader.close()


def test_refused_reports_wait_out_the_backoff_and_go_again_oldest_first(tmp_path: Path) -> None:
    conn = open_database(tmp_path)
    buffer = ReportBuffer(conn)
    for seq in range(1, 5):
        buffer.append(seq, f"r{seq}".encode())
    sent: list[bytes] = []

    def publish(payload: bytes) -> MQTTMessageInfo:
        sent.append(payload)
        info = MQTTMessageInfo(len(sent))
        info.rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        return info

    now = [100.0]
    sender = ReportSender(
        buffer,
        publish,
        window=10,
        retry=Backoff(initial_s=2.0, cap_s=8.0, rng=random.Random(1)),
        clock=lambda: now[0],
    )
    sender.send()
    assert sent == [b"r1", b"r2", b"r3", b"r4"]
    nobody = ReasonCode(PacketTypes.PUBACK, identifier=NO_MATCHING_SUBSCRIBERS)
    assert undelivered(nobody)
    assert not undelivered(ReasonCode(PacketTypes.PUBACK, identifier=0))
    sender.acknowledged(1)  # r1 reached someone; r2 and r3 did not, r4 did
    assert sender.refused(2, nobody)
    assert sender.refused(3, nobody)
    sender.acknowledged(4)
    assert not sender.refused(99, nobody), "not a report: a state or reply message"
    sender.forget_acknowledged()
    assert buffer.pending == 2

    now[0] += 0.9  # the first delay is drawn from [1, 2] s
    sender.send()
    assert len(sent) == 4, "nothing is sent again before the backoff delay"
    now[0] += 1.2
    sender.send()
    assert sent[4:] == [b"r2", b"r3"]
    sender.acknowledged(5)
    sender.acknowledged(6)
    sender.forget_acknowledged()
    assert buffer.pending == 0
    conn.close()
