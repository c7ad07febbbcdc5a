"""Issuing and revoking devices' broker credentials, whichever broker is in use."""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from typing import Protocol, TypeVar

from fleet.broker.dynsec import DynsecClient, DynsecError
from fleet.broker.urls import BrokerAddress, parse_broker_url
from fleet.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


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

    def close(self) -> None:
        """Release any connection held to the broker."""
        ...


class DynsecIssuer:
    """Per-device identities in Mosquitto's dynamic security plugin, enforced by the broker."""

    def __init__(self, address: BrokerAddress, *, timeout_s: float = 10.0) -> None:
        self.address = address
        self.timeout_s = timeout_s
        # One admin connection reused across calls: a fresh one costs ~100 ms, which made
        # enrolling a prison's worth of devices take minutes.
        self._lock = threading.Lock()
        self._client: DynsecClient | None = None

    def _run(self, operation: Callable[[DynsecClient], T]) -> T:
        with self._lock:
            for attempt in (1, 2):
                if self._client is None:
                    self._client = DynsecClient(self.address, timeout_s=self.timeout_s).connect()
                try:
                    return operation(self._client)
                except DynsecError as exc:
                    if exc.plugin_error or attempt == 2:
                        raise  # the plugin refused: retrying would not change its answer
                    log.warning("dynamic-security connection failed (%s); reconnecting", exc)
                    self._drop()
            raise AssertionError("unreachable")

    def _drop(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            finally:
                self._client = None

    def close(self) -> None:
        with self._lock:
            self._drop()

    def issue(self, device_id: str) -> str:
        return self._run(lambda admin: admin.create_device_identity(device_id))

    def revoke(self, device_id: str) -> None:
        self._run(lambda admin: admin.disable_device(device_id))

    def restore(self, device_id: str) -> None:
        self._run(lambda admin: admin.enable_device(device_id))

    def delete(self, device_id: str) -> None:
        """Remove the device's identity entirely (decommissioning)."""
        self._run(lambda admin: admin.delete_device_identity(device_id))


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

    def close(self) -> None:
        """Nothing to release."""


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
