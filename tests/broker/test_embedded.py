"""The in-process demo broker: retained messages, QoS 1, wills, and what it cannot do."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from paho.mqtt.enums import MQTTProtocolVersion

from fleet.broker.embedded import (
    EmbeddedBroker,
    EmbeddedBrokerError,
    protocol_for,
    supports_shared_subscriptions,
)
from fleet.broker.urls import BrokerAddress, Will, parse_broker_url
from fleet.settings import get_settings
from tests.broker.mqtt_watch import Watched, free_port, watch

V311 = MQTTProtocolVersion.MQTTv311


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker("127.0.0.1", free_port()) as running:
        yield running


@pytest.fixture
def address(broker: EmbeddedBroker) -> BrokerAddress:
    return parse_broker_url(broker.url)


@pytest.fixture
def clients() -> Iterator[list[Watched]]:
    opened: list[Watched] = []
    yield opened
    for watched in opened:
        watched.close()


def test_retained_qos1_message_reaches_a_late_subscriber(
    address: BrokerAddress, clients: list[Watched]
) -> None:
    name = f"estate/v1/dev/E{uuid.uuid4().hex[:8]}/state"
    publisher = watch(address, "pub", protocol=V311)
    clients.append(publisher)
    assert publisher.publish(name, b'{"state": "online"}', qos=1, retain=True) == "accepted"

    late = watch(address, "late", protocol=V311)
    clients.append(late)
    late.subscribe(name, qos=1)

    assert late.wait_until(lambda: late.received(name, b'{"state": "online"}'))
    (message,) = late.messages
    assert (message.retain, message.qos) == (True, 1)


def test_will_is_published_when_a_client_vanishes(
    address: BrokerAddress, clients: list[Watched]
) -> None:
    name = f"estate/v1/dev/E{uuid.uuid4().hex[:8]}/state"
    watcher = watch(address, "watcher", protocol=V311)
    clients.append(watcher)
    watcher.subscribe(name, qos=1)
    doomed = watch(address, "doomed", protocol=V311, will=Will(name, b'{"state": "lost"}'))

    doomed.paho.loop_stop()
    connection = doomed.paho.socket()
    assert connection is not None
    connection.close()  # no DISCONNECT: the broker must publish the will

    assert watcher.wait_until(lambda: watcher.received(name, b'{"state": "lost"}'), timeout_s=10)


def test_connecting_client_gets_only_its_own_retained_messages(
    address: BrokerAddress, clients: list[Watched]
) -> None:
    device_id = f"E{uuid.uuid4().hex[:8]}"
    name = f"estate/v1/dev/{device_id}/config"
    holder = watch(address, "holder", protocol=V311)
    clients.append(holder)
    holder.subscribe(name)
    assert holder.publish(name, b"config", retain=True) == "accepted"
    assert holder.wait_until(lambda: holder.received(name, b"config"))

    other = watch(address, "other-device", protocol=V311)
    clients.append(other)
    marker = f"estate/v1/dev/{device_id}/marker"
    other.subscribe(marker)
    other.publish(marker, b"marker")

    assert other.wait_until(lambda: other.received(marker, b"marker"))
    assert other.topics() == [marker]


def test_persistent_session_receives_qos1_sent_while_offline(
    address: BrokerAddress, clients: list[Watched]
) -> None:
    name = f"estate/v1/dev/E{uuid.uuid4().hex[:8]}/health"
    client_id = f"ingest-{uuid.uuid4().hex[:8]}"
    consumer = watch(address, client_id, protocol=V311, clean_start=False)
    consumer.subscribe(name, qos=1)
    consumer.close()
    sender = watch(address, "sender", protocol=V311)
    clients.append(sender)
    assert sender.publish(name, b"while-offline") == "accepted"

    back = watch(address, client_id, protocol=V311, clean_start=False)
    clients.append(back)

    assert back.wait_until(lambda: back.received(name, b"while-offline"))


def test_shared_subscriptions_are_not_supported(
    address: BrokerAddress, clients: list[Watched]
) -> None:
    name = f"estate/v1/dev/E{uuid.uuid4().hex[:8]}/health"
    shared = watch(address, "shared", protocol=V311)
    plain = watch(address, "plain", protocol=V311)
    clients += [shared, plain]
    shared.subscribe("$share/estate-ingest/estate/v1/dev/+/health")
    plain.subscribe("estate/v1/dev/+/health")

    plain.publish(name, b"report")

    assert plain.wait_until(lambda: plain.received(name, b"report"))
    assert shared.messages == []  # amqtt accepts the filter but never matches it
    assert supports_shared_subscriptions(get_settings(mqtt_url="embedded")) is False


def test_settings_choose_protocol_and_shared_subscriptions() -> None:
    mosquitto = get_settings(mqtt_url="mqtt://ingest:pw@broker:1883")
    embedded = get_settings(mqtt_url="embedded")

    assert supports_shared_subscriptions(mosquitto) is True
    assert protocol_for(mosquitto) == MQTTProtocolVersion.MQTTv5
    assert protocol_for(embedded) == V311
    assert EmbeddedBroker.from_settings(embedded).url == "mqtt://127.0.0.1:18830"


def test_busy_port_is_a_clear_error(broker: EmbeddedBroker) -> None:
    with pytest.raises(EmbeddedBrokerError, match=r"could not listen on 127\.0\.0\.1:\d+"):
        EmbeddedBroker(broker.host, broker.port).start()


def test_stop_then_start_again() -> None:
    port = free_port()
    broker = EmbeddedBroker("127.0.0.1", port)
    broker.start()
    broker.stop()
    assert not broker.running

    broker.start()
    try:
        client = watch(parse_broker_url(broker.url), "again", protocol=V311)
        assert client.paho.is_connected()
        client.close()
    finally:
        broker.stop()
