"""`estate broker bootstrap` against a real Mosquitto."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from click.testing import CliRunner

from fleet.broker.urls import connect_client
from fleet.cli import main
from tests.broker.mqtt_watch import watch

if TYPE_CHECKING:  # the fixture module is loaded by tests/conftest.py
    from tests.services.mosquitto import DynsecBroker


def broker_env(broker: DynsecBroker) -> dict[str, str]:
    return {
        "ESTATE_MQTT_URL": f"mqtt://127.0.0.1:{broker.port}",
        "ESTATE_MQTT_ADMIN_USERNAME": broker.admin.username,
        "ESTATE_MQTT_ADMIN_PASSWORD": broker.admin.password,
    }


def test_bootstrap_with_generated_passwords(dynsec_broker: DynsecBroker) -> None:
    result = CliRunner().invoke(
        main,
        [
            "broker",
            "bootstrap",
            "--ingest-username",
            "cli-ingest",
            "--control-username",
            "cli-control",
            "--generate-passwords",
        ],
        env=broker_env(dynsec_broker),
    )

    assert result.exit_code == 0, result.output
    passwords = dict(re.findall(r"generated password for (\S+): (\S+)", result.output))
    assert set(passwords) == {"cli-ingest", "cli-control"}
    assert "role estate-ingest" in result.output
    ingest = watch(dynsec_broker.address_for("cli-ingest", passwords["cli-ingest"]), "cli-i")
    try:
        assert ingest.subscribe("$share/estate-ingest/estate/v1/dev/+/health") == ["Granted QoS 1"]
    finally:
        ingest.close()


def test_bootstrap_passwords_from_environment(dynsec_broker: DynsecBroker) -> None:
    env = broker_env(dynsec_broker) | {
        "ESTATE_MQTT_INGEST_USERNAME": "env-ingest",
        "ESTATE_MQTT_INGEST_PASSWORD": "env-ingest-pw",
        "ESTATE_MQTT_CONTROL_USERNAME": "env-control",
        "ESTATE_MQTT_CONTROL_PASSWORD": "env-control-pw",
    }

    result = CliRunner().invoke(main, ["broker", "bootstrap"], env=env)

    assert result.exit_code == 0, result.output
    assert "generated" not in result.output
    client = connect_client(dynsec_broker.address_for("env-control", "env-control-pw"), "env-c")
    client.disconnect()
    client.loop_stop()


def test_bootstrap_needs_passwords(dynsec_broker: DynsecBroker) -> None:
    result = CliRunner().invoke(main, ["broker", "bootstrap"], env=broker_env(dynsec_broker))

    assert result.exit_code == 2
    assert "give --ingest-password (or --generate-passwords)" in result.output


def test_bootstrap_refuses_the_embedded_broker() -> None:
    result = CliRunner().invoke(
        main,
        ["broker", "bootstrap", "--generate-passwords"],
        env={"ESTATE_MQTT_URL": "embedded"},
    )

    assert result.exit_code == 2
    assert "in-process demo broker has no identities" in result.output


def test_bootstrap_reports_a_wrong_admin_password(dynsec_broker: DynsecBroker) -> None:
    env = broker_env(dynsec_broker) | {"ESTATE_MQTT_ADMIN_PASSWORD": "wrong"}

    result = CliRunner().invoke(main, ["broker", "bootstrap", "--generate-passwords"], env=env)

    assert result.exit_code == 1
    assert "cannot log in to the broker as admin" in result.output
    assert "generated password" not in result.output


def test_help_explains_the_roles() -> None:
    result = CliRunner().invoke(main, ["broker", "bootstrap", "--help"])

    assert result.exit_code == 0
    assert "$share/<group>/..." in result.output
    assert "ESTATE_MQTT_INGEST_PASSWORD" in result.output
