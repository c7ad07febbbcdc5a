"""Issuing and revoking devices' broker credentials, whichever broker is in use."""

from __future__ import annotations

import logging
import secrets
from typing import Protocol

from fleet.broker.dynsec import DynsecClient
from fleet.broker.urls import BrokerAddress, parse_broker_url
from fleet.settings import Settings

log = logging.getLogger(__name__)


class CredentialIssuer(Protocol):
    """Gives a device its broker login at enrolment and takes it away at revocation."""

    def issue(self, device_id: str) -> str:
        """Create or re-key the device's broker identity; return the password (shown once)."""
        ...

    def revoke(self, device_id: str) -> None:
        """Refuse the device at the broker from now on, dropping any live connection."""
        ...

    def restore(self, device_id: str) -> None:
        """Let a revoked device connect again with the password it already holds."""
        ...


class DynsecIssuer:
    """Per-device identities in Mosquitto's dynamic security plugin, enforced by the broker."""

    def __init__(self, address: BrokerAddress, *, timeout_s: float = 10.0) -> None:
        self.address = address
        self.timeout_s = timeout_s

    def _admin(self) -> DynsecClient:
        # Enrolment and revocation are rare: a short-lived admin connection per call is enough.
        return DynsecClient(self.address, timeout_s=self.timeout_s)

    def issue(self, device_id: str) -> str:
        with self._admin() as admin:
            return admin.create_device_identity(device_id)

    def revoke(self, device_id: str) -> None:
        with self._admin() as admin:
            admin.disable_device(device_id)

    def restore(self, device_id: str) -> None:
        with self._admin() as admin:
            admin.enable_device(device_id)

    def delete(self, device_id: str) -> None:
        """Remove the device's identity entirely (decommissioning)."""
        with self._admin() as admin:
            admin.delete_device_identity(device_id)


class OpenBrokerIssuer:
    """For the embedded demo broker, which lets anyone in: the password is random but unchecked,
    and revoke/restore change nothing at the broker (revocation then rests on command signing
    and on ingest refusing revoked devices)."""

    def issue(self, device_id: str) -> str:
        return secrets.token_urlsafe(24)

    def revoke(self, device_id: str) -> None:
        log.info("broker checks no identities; device %s is revoked in records only", device_id)

    def restore(self, device_id: str) -> None:
        log.info("broker checks no identities; device %s restored in records only", device_id)


def make_issuer(settings: Settings) -> CredentialIssuer:
    """The issuer ESTATE_MQTT_CREDENTIALS selects ('dynsec' or 'none')."""
    if settings.mqtt_credentials == "dynsec":
        if not settings.mqtt_admin_username or not settings.mqtt_admin_password:
            raise ValueError(
                "ESTATE_MQTT_CREDENTIALS=dynsec needs ESTATE_MQTT_ADMIN_USERNAME and "
                "ESTATE_MQTT_ADMIN_PASSWORD (the dynamic security admin login)"
            )
        if settings.embedded_mqtt:
            raise ValueError(
                "ESTATE_MQTT_CREDENTIALS=dynsec needs a Mosquitto broker in ESTATE_MQTT_URL; "
                "the embedded broker has no dynamic security plugin"
            )
        address = parse_broker_url(settings.effective_mqtt_url).with_credentials(
            settings.mqtt_admin_username, settings.mqtt_admin_password
        )
        return DynsecIssuer(address)
    if settings.profile == "production":
        raise ValueError(
            "the production profile needs ESTATE_MQTT_CREDENTIALS=dynsec: with 'none' the broker "
            "lets any device impersonate any other"
        )
    if not settings.embedded_mqtt:
        log.warning(
            "ESTATE_MQTT_CREDENTIALS=none with an external broker: device logins are not "
            "created or revoked at %s",
            parse_broker_url(settings.effective_mqtt_url).redacted(),
        )
    return OpenBrokerIssuer()
