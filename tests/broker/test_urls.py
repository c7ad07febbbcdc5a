"""Parsing broker URLs and connecting with them."""

from __future__ import annotations

import pytest

from fleet.broker.urls import (
    BrokerAddress,
    BrokerConnectError,
    BrokerUrlError,
    connect_client,
    parse_broker_url,
)
from tests.broker.mqtt_watch import free_port


def test_full_url() -> None:
    address = parse_broker_url("mqtt://ingest:s%40cret%3A1@broker.example:1884")

    assert address == BrokerAddress("broker.example", 1884, "ingest", "s@cret:1", tls=False)
    assert address.to_url() == "mqtt://ingest:s%40cret%3A1@broker.example:1884"
    assert address.redacted() == "mqtt://ingest:***@broker.example:1884"
    assert "s@cret" not in repr(address)


def test_defaults_and_tls() -> None:
    assert parse_broker_url("mqtt://broker") == BrokerAddress("broker", 1883)
    tls = parse_broker_url("mqtts://dev:pw@broker?cafile=/etc/estate/ca.pem")
    assert (tls.port, tls.tls, tls.ca_file) == (8883, True, "/etc/estate/ca.pem")
    assert tls.redacted() == "mqtts://dev:***@broker:8883?cafile=/etc/estate/ca.pem"
    assert parse_broker_url("mqtt://[::1]:1883").to_url() == "mqtt://[::1]:1883"


def test_with_credentials_keeps_the_rest() -> None:
    base = parse_broker_url("mqtts://broker:9000")

    assert base.with_credentials("A1", "pw") == BrokerAddress("broker", 9000, "A1", "pw", tls=True)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://broker:1883", "must start with mqtt:// or mqtts://"),
        ("embedded", "must start with mqtt:// or mqtts://"),
        ("mqtt://:1883", "has no host name"),
        ("mqtt://broker:notaport", "invalid MQTT URL"),
        ("mqtt://broker/estate", "must not have a path"),
        ("mqtt://broker?verify=no", "unknown options"),
        ("mqtt://broker?cafile=/ca.pem", "only makes sense with mqtts://"),
    ],
)
def test_bad_urls_say_what_to_fix(url: str, message: str) -> None:
    with pytest.raises(BrokerUrlError, match=message):
        parse_broker_url(url)


def test_bad_url_errors_hide_the_password() -> None:
    with pytest.raises(BrokerUrlError) as caught:
        parse_broker_url("http://user:hunter2@broker")

    assert "hunter2" not in str(caught.value)
    assert "user:***@broker" in str(caught.value)


def test_unreachable_broker_is_a_connect_error() -> None:
    address = BrokerAddress("127.0.0.1", free_port(), "someone", "secret")

    with pytest.raises(BrokerConnectError, match="Connection refused") as caught:
        connect_client(address, "nobody-listens", timeout_s=2)

    assert "secret" not in str(caught.value)
