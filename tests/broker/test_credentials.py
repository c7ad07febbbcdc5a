"""Choosing the credential issuer from settings, and what each one does."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from fleet.broker.credentials import DynsecIssuer, OpenBrokerIssuer, make_issuer
from fleet.broker.dynsec import DynsecClient
from fleet.settings import get_settings

if TYPE_CHECKING:  # the fixture module is loaded by tests/conftest.py
    from tests.services.mosquitto import DynsecBroker


def test_dynsec_settings_give_a_dynsec_issuer_logged_in_as_admin(
    dynsec_broker: DynsecBroker,
) -> None:
    settings = get_settings(
        mqtt_url=dynsec_broker.url_for(*dynsec_broker.ingest),
        mqtt_credentials="dynsec",
        mqtt_admin_username=dynsec_broker.admin.username,
        mqtt_admin_password=dynsec_broker.admin.password,
    )

    issuer = make_issuer(settings)

    assert isinstance(issuer, DynsecIssuer)
    assert issuer.address == dynsec_broker.admin_address
    issuer.issue("CRED-1")
    with DynsecClient(dynsec_broker.admin_address) as admin:
        assert admin.get_client("CRED-1") is not None


def test_dynsec_without_admin_login_is_refused() -> None:
    settings = get_settings(mqtt_url="mqtt://broker:1883", mqtt_credentials="dynsec")

    with pytest.raises(
        ValueError, match="ESTATE_MQTT_ADMIN_USERNAME and ESTATE_MQTT_ADMIN_PASSWORD"
    ):
        make_issuer(settings)


def test_dynsec_with_embedded_broker_is_refused() -> None:
    settings = get_settings(
        mqtt_credentials="dynsec", mqtt_admin_username="a", mqtt_admin_password="b"
    )

    with pytest.raises(ValueError, match="embedded broker has no dynamic security"):
        make_issuer(settings)


def test_embedded_broker_gets_the_open_issuer() -> None:
    issuer = make_issuer(get_settings(mqtt_url="embedded"))

    assert isinstance(issuer, OpenBrokerIssuer)
    first, second = issuer.issue("D1"), issuer.issue("D1")
    assert len(first) >= 32
    assert first != second


def test_production_refuses_unenforced_identities() -> None:
    settings = get_settings(
        profile="production",
        secret_key="k" * 40,
        signing_key="c2lnbmluZy1rZXk=",
        database_url="postgresql+psycopg://estate@db/estate",
        mqtt_url="mqtt://broker:1883",
        mqtt_credentials="none",
    )

    with pytest.raises(ValueError, match="production profile needs ESTATE_MQTT_CREDENTIALS=dynsec"):
        make_issuer(settings)
