"""Per-device broker identities enforced by a real Mosquitto with dynamic security."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from paho.mqtt.enums import MQTTProtocolVersion

from agents.protocol import topic
from fleet.broker.credentials import DynsecIssuer
from fleet.broker.dynsec import DynsecClient, DynsecError
from fleet.broker.urls import BrokerAddress, BrokerConnectError, connect_client
from tests.broker.mqtt_watch import Watched, free_port, watch

if TYPE_CHECKING:  # the fixture module is loaded by tests/conftest.py
    from tests.services.mosquitto import DynsecBroker


V311 = MQTTProtocolVersion.MQTTv311
V5 = MQTTProtocolVersion.MQTTv5


def new_device_id() -> str:
    return f"T{uuid.uuid4().hex[:10]}"


@pytest.fixture
def issuer(dynsec_broker: DynsecBroker) -> DynsecIssuer:
    return DynsecIssuer(dynsec_broker.admin_address)


@pytest.fixture
def clients() -> Iterator[list[Watched]]:
    opened: list[Watched] = []
    yield opened
    for watched in opened:
        watched.close()


@pytest.fixture
def ingest(dynsec_broker: DynsecBroker, clients: list[Watched]) -> Watched:
    watched = watch(dynsec_broker.address_for(*dynsec_broker.ingest), f"ingest-{uuid.uuid4().hex}")
    clients.append(watched)
    assert watched.subscribe("$share/estate-ingest/estate/v1/dev/+/health") == ["Granted QoS 1"]
    assert watched.subscribe("estate/v1/dev/+/state") == ["Granted QoS 1"]
    return watched


def connect_device(
    broker: DynsecBroker,
    clients: list[Watched],
    device_id: str,
    password: str,
    protocol: MQTTProtocolVersion = V5,
) -> Watched:
    watched = watch(broker.address_for(device_id, password), device_id, protocol=protocol)
    clients.append(watched)
    return watched


def test_device_health_reaches_ingest(
    dynsec_broker: DynsecBroker, issuer: DynsecIssuer, ingest: Watched, clients: list[Watched]
) -> None:
    device_id = new_device_id()
    device = connect_device(dynsec_broker, clients, device_id, issuer.issue(device_id))

    assert device.publish(topic(device_id, "health"), b'{"seq": 1}') == "accepted"
    assert (
        device.publish(topic(device_id, "state"), b'{"state": "online"}', retain=True) == "accepted"
    )

    assert ingest.wait_until(lambda: ingest.received(topic(device_id, "health"), b'{"seq": 1}'))
    assert ingest.wait_until(
        lambda: ingest.received(topic(device_id, "state"), b'{"state": "online"}')
    )


@pytest.mark.parametrize("protocol", [V311, V5], ids=["mqtt311", "mqtt5"])
def test_device_cannot_publish_as_another_device(
    dynsec_broker: DynsecBroker,
    issuer: DynsecIssuer,
    ingest: Watched,
    clients: list[Watched],
    protocol: MQTTProtocolVersion,
) -> None:
    device_a, device_b = new_device_id(), new_device_id()
    issuer.issue(device_b)
    device = connect_device(dynsec_broker, clients, device_a, issuer.issue(device_a), protocol)

    puback = device.publish(topic(device_b, "health"), b"forged")
    # Mosquitto handles one connection's packets in order: once the marker arrives, the
    # forged report would have arrived too.
    device.publish(topic(device_a, "health"), b"marker")
    assert ingest.wait_until(lambda: ingest.received(topic(device_a, "health"), b"marker"))

    assert topic(device_b, "health") not in ingest.topics()
    # MQTT 3.1.1 has no way to say no: the broker acknowledges and drops.
    assert puback == ("Not authorized" if protocol == V5 else "accepted")


def test_device_cannot_read_another_devices_commands(
    dynsec_broker: DynsecBroker, issuer: DynsecIssuer, clients: list[Watched]
) -> None:
    device_a, device_b = new_device_id(), new_device_id()
    issuer.issue(device_b)
    device = connect_device(dynsec_broker, clients, device_a, issuer.issue(device_a))
    control = watch(dynsec_broker.address_for(*dynsec_broker.control), f"ctl-{device_a}")
    clients.append(control)

    assert device.subscribe(topic(device_b, "cmd")) == ["Not authorized"]
    assert device.subscribe("estate/v1/dev/+/cmd") == ["Not authorized"]
    assert device.subscribe("estate/v1/dev/#") == ["Not authorized"]
    assert device.subscribe(topic(device_a, "cmd")) == ["Granted QoS 1"]
    assert device.subscribe(topic(device_a, "config")) == ["Granted QoS 1"]

    assert control.publish(topic(device_b, "cmd"), b"for-b") == "accepted"
    assert control.publish(topic(device_a, "config"), b"config-a", retain=True) == "accepted"
    assert control.publish(topic(device_a, "cmd"), b"for-a") == "accepted"

    assert device.wait_until(lambda: device.received(topic(device_a, "cmd"), b"for-a"))
    assert device.received(topic(device_a, "config"), b"config-a")
    assert topic(device_b, "cmd") not in device.topics()


def test_control_plane_cannot_forge_device_reports(
    dynsec_broker: DynsecBroker, ingest: Watched, clients: list[Watched]
) -> None:
    control = watch(dynsec_broker.address_for(*dynsec_broker.control), f"ctl-{uuid.uuid4().hex}")
    clients.append(control)
    device_id = new_device_id()

    assert control.publish(topic(device_id, "health"), b"forged") == "Not authorized"
    assert control.subscribe(topic(device_id, "health")) == ["Not authorized"]
    assert control.subscribe("$share/api/estate/v1/dev/+/cmd/reply") == ["Granted QoS 1"]


def test_revoke_drops_the_connection_and_restore_lets_it_back(
    dynsec_broker: DynsecBroker, issuer: DynsecIssuer, clients: list[Watched]
) -> None:
    device_id = new_device_id()
    password = issuer.issue(device_id)
    device = connect_device(dynsec_broker, clients, device_id, password)

    issuer.revoke(device_id)

    assert device.wait_until(lambda: bool(device.disconnects)), "live connection was not dropped"
    assert device.disconnects[0] == "Administrative action"
    device.close()  # stop paho retrying in the background
    address = dynsec_broker.address_for(device_id, password)
    with pytest.raises(BrokerConnectError, match="Not authorized"):
        connect_client(address, device_id, timeout_s=5)

    issuer.restore(device_id)

    back = connect_device(dynsec_broker, clients, device_id, password)
    assert back.publish(topic(device_id, "health"), b"back") == "accepted"


def test_reissue_replaces_the_password(
    dynsec_broker: DynsecBroker, issuer: DynsecIssuer, clients: list[Watched]
) -> None:
    device_id = new_device_id()
    old = issuer.issue(device_id)
    new = issuer.issue(device_id)

    assert new != old
    with pytest.raises(BrokerConnectError, match="Not authorized"):
        connect_client(dynsec_broker.address_for(device_id, old), device_id, timeout_s=5)
    assert connect_device(dynsec_broker, clients, device_id, new).paho.is_connected()


def test_delete_removes_the_identity_and_is_repeatable(dynsec_broker: DynsecBroker) -> None:
    device_id = new_device_id()
    with DynsecClient(dynsec_broker.admin_address) as admin:
        password = admin.create_device_identity(device_id)
        admin.delete_device_identity(device_id)
        admin.delete_device_identity(device_id)

        assert admin.get_client(device_id) is None
        assert admin.get_role(f"device-{device_id}") is None
    with pytest.raises(BrokerConnectError, match="Not authorized"):
        connect_client(dynsec_broker.address_for(device_id, password), device_id, timeout_s=5)


def test_device_operations_refuse_service_logins(dynsec_broker: DynsecBroker) -> None:
    with DynsecClient(dynsec_broker.admin_address) as admin:
        with pytest.raises(DynsecError, match="not a device identity"):
            admin.create_device_identity(dynsec_broker.ingest.username)
        with pytest.raises(DynsecError, match="not a device identity"):
            admin.disable_device(dynsec_broker.control.username)
        with pytest.raises(DynsecError, match="not a valid device id"):
            admin.create_device_identity("../etc")

        assert admin.get_client(dynsec_broker.ingest.username) == {
            "username": dynsec_broker.ingest.username,
            "textname": "Estate ingest: reads device reports",
            "roles": [{"rolename": "estate-ingest"}],
            "groups": [],
        }


def test_enable_unknown_device_says_to_enrol_again(issuer: DynsecIssuer) -> None:
    with pytest.raises(DynsecError, match="enrol it again"):
        issuer.restore(new_device_id())


def test_bootstrap_rerun_keeps_service_logins_working(
    dynsec_broker: DynsecBroker, clients: list[Watched]
) -> None:
    with DynsecClient(dynsec_broker.admin_address) as admin:
        admin.bootstrap_service_roles(*dynsec_broker.ingest, *dynsec_broker.control)
        role = admin.get_role("estate-ingest")

    assert role is not None
    assert len(role["acls"]) == 12  # subscribe, shared subscribe, receive x 4 channels
    ingest = watch(dynsec_broker.address_for(*dynsec_broker.ingest), f"ing-{uuid.uuid4().hex}")
    clients.append(ingest)
    assert ingest.subscribe("$share/g/estate/v1/dev/+/config/reported") == ["Granted QoS 1"]
    assert ingest.subscribe("estate/v1/dev/+/cmd") == ["Not authorized"]


def test_bad_admin_password_is_a_clear_error(dynsec_broker: DynsecBroker) -> None:
    wrong = dynsec_broker.address_for(dynsec_broker.admin.username, "not-the-password")

    with pytest.raises(DynsecError) as caught:
        DynsecIssuer(wrong, timeout_s=5).issue(new_device_id())

    message = str(caught.value)
    assert "cannot log in to the broker as admin 'estate-admin'" in message
    assert "Not authorized" in message
    assert "ESTATE_MQTT_ADMIN_PASSWORD" in message
    assert "not-the-password" not in message


def test_non_admin_login_cannot_run_commands(dynsec_broker: DynsecBroker) -> None:
    with pytest.raises(DynsecError, match=r"may not subscribe to \$CONTROL"):
        DynsecClient(dynsec_broker.address_for(*dynsec_broker.control), timeout_s=5).connect()


def test_restarted_broker_keeps_identities_and_retained_config(
    dynsec_broker: DynsecBroker, issuer: DynsecIssuer, clients: list[Watched]
) -> None:
    device_id = new_device_id()
    password = issuer.issue(device_id)
    control = watch(dynsec_broker.address_for(*dynsec_broker.control), f"ctl-{device_id}")
    clients.append(control)
    assert control.publish(topic(device_id, "config"), b"v1", retain=True) == "accepted"

    dynsec_broker.stop()
    with pytest.raises(BrokerConnectError, match="Connection refused"):
        connect_client(dynsec_broker.address_for(device_id, password), device_id, timeout_s=2)
    dynsec_broker.start()

    device = connect_device(dynsec_broker, clients, device_id, password)
    assert device.subscribe(topic(device_id, "config")) == ["Granted QoS 1"]
    assert device.wait_until(lambda: device.received(topic(device_id, "config"), b"v1"))


def test_unreachable_broker_is_a_clear_error() -> None:
    nowhere = BrokerAddress("127.0.0.1", free_port(), "estate-admin", "pw")

    with pytest.raises(
        DynsecError, match=r"cannot reach the broker at mqtt://estate-admin:\*\*\*@"
    ):
        DynsecClient(nowhere, timeout_s=2).connect()
