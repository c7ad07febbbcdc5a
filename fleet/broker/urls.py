"""Broker addresses (mqtt:// and mqtts:// URLs) and a paho-mqtt client factory."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
# Broker-side session lifetime for clean_start=False connections when the caller gives none.
DEFAULT_SESSION_EXPIRY_S = 3600

OnConnect = Callable[..., None]
OnMessage = Callable[[mqtt.Client, Any, mqtt.MQTTMessage], None]
OnDisconnect = Callable[..., None]


class BrokerUrlError(ValueError):
    """An MQTT URL that cannot be used; the message says what to change."""


class BrokerConnectError(ConnectionError):
    """The broker could not be reached (refused=False) or turned the login down (refused=True)."""

    def __init__(self, address: BrokerAddress, reason: str, *, refused: bool = False) -> None:
        super().__init__(f"MQTT connection to {address.redacted()} failed: {reason}")
        self.address = address
        self.reason = reason
        self.refused = refused


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where a broker listens and who to log in as; the password never appears in repr()."""

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_file: str | None = None

    def with_credentials(self, username: str | None, password: str | None) -> BrokerAddress:
        return replace(self, username=username, password=password)

    def to_url(self) -> str:
        """The full URL, password included (for handing to a process, never for logs)."""
        return self._format(mask_password=False)

    def redacted(self) -> str:
        """The URL with the password masked, safe for logs and error messages."""
        return self._format(mask_password=True)

    def _format(self, *, mask_password: bool) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        credentials = ""
        if self.username is not None:
            credentials = quote(self.username, safe="")
            if self.password is not None:
                credentials += ":" + ("***" if mask_password else quote(self.password, safe=""))
            credentials += "@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = f"?cafile={quote(self.ca_file)}" if self.ca_file else ""
        return f"{scheme}://{credentials}{host}:{self.port}{query}"


def parse_broker_url(url: str) -> BrokerAddress:
    """Parse mqtt://user:pass@host:port (mqtts:// for TLS, optional ?cafile=/path.pem)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise BrokerUrlError(f"invalid MQTT URL {_mask(url)!r}: {exc}") from None
    if parts.scheme not in DEFAULT_PORTS:
        raise BrokerUrlError(
            f"MQTT URL {_mask(url)!r} must start with mqtt:// or mqtts:// "
            "(for example mqtt://user:pass@broker.example:1883)"
        )
    if not parts.hostname:
        raise BrokerUrlError(f"MQTT URL {_mask(url)!r} has no host name")
    if parts.path not in ("", "/"):
        raise BrokerUrlError(f"MQTT URL {_mask(url)!r} must not have a path ({parts.path!r})")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(query) - {"cafile"}
    if unknown:
        raise BrokerUrlError(
            f"MQTT URL {_mask(url)!r} has unknown options {sorted(unknown)}; only cafile is allowed"
        )
    ca_file = query.get("cafile", [""])[-1] or None
    if ca_file and parts.scheme != "mqtts":
        raise BrokerUrlError("cafile only makes sense with mqtts:// (TLS)")
    return BrokerAddress(
        host=parts.hostname,
        port=port or DEFAULT_PORTS[parts.scheme],
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
        tls=parts.scheme == "mqtts",
        ca_file=ca_file,
    )


def _mask(url: str) -> str:
    """Hide a password in a URL that may not even parse, for error messages."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    userinfo, _, hostpart = rest.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{hostpart}" if ":" in userinfo else url


@dataclass(frozen=True, slots=True)
class Will:
    """A Last Will the broker publishes if the connection dies without a clean disconnect."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


def make_client(
    address: BrokerAddress,
    client_id: str,
    *,
    protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5,
    clean_start: bool = True,
    manual_ack: bool = False,
    userdata: Any = None,
    will: Will | None = None,
) -> mqtt.Client:
    """A configured (credentials, TLS, will) but unconnected paho client."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        # MQTT 5 takes clean_start at connect(); 3.1.1 takes clean_session here.
        clean_session=None if protocol == MQTTProtocolVersion.MQTTv5 else clean_start,
        userdata=userdata,
        protocol=protocol,
        manual_ack=manual_ack,
    )
    if address.username is not None:
        client.username_pw_set(address.username, address.password)
    if address.tls:
        client.tls_set(ca_certs=address.ca_file)
    if will is not None:
        client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
    return client


def connect_client(
    address: BrokerAddress,
    client_id: str,
    *,
    protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5,
    clean_start: bool = True,
    session_expiry_s: int | None = None,
    keepalive: int = 30,
    will: Will | None = None,
    manual_ack: bool = False,
    userdata: Any = None,
    on_connect: OnConnect | None = None,
    on_message: OnMessage | None = None,
    on_disconnect: OnDisconnect | None = None,
    timeout_s: float = 10.0,
) -> mqtt.Client:
    """Connect, start paho's network thread, and return once the broker has accepted us.

    Callbacks are installed before connecting so nothing queued in a persistent session is
    missed. `on_connect` runs after every successful connect, automatic reconnects included
    (subscribe there). Raises BrokerConnectError if the broker is unreachable or refuses.
    """
    client = make_client(
        address,
        client_id,
        protocol=protocol,
        clean_start=clean_start,
        manual_ack=manual_ack,
        userdata=userdata,
        will=will,
    )
    first_result: list[Any] = []
    answered = threading.Event()

    def _on_connect(cl: mqtt.Client, ud: Any, flags: Any, reason_code: Any, props: Any) -> None:
        if not answered.is_set():
            first_result.append(reason_code)
            answered.set()
        if on_connect is not None and not reason_code.is_failure:
            on_connect(cl, ud, flags, reason_code, props)

    client.on_connect = _on_connect
    if on_message is not None:
        client.on_message = on_message
    if on_disconnect is not None:
        client.on_disconnect = on_disconnect

    v5_options: dict[str, Any] = {}
    if protocol == MQTTProtocolVersion.MQTTv5:
        properties = Properties(PacketTypes.CONNECT)
        if session_expiry_s is None:
            session_expiry_s = 0 if clean_start else DEFAULT_SESSION_EXPIRY_S
        properties.SessionExpiryInterval = session_expiry_s
        v5_options = {"clean_start": clean_start, "properties": properties}
    try:
        client.connect(address.host, address.port, keepalive, **v5_options)
    except OSError as exc:
        raise BrokerConnectError(address, f"{type(exc).__name__}: {exc}") from exc
    client.loop_start()
    if not answered.wait(timeout_s):
        close_client(client)  # or its network thread would keep retrying
        raise BrokerConnectError(address, f"no CONNACK within {timeout_s:g}s")
    reason = first_result[0]
    if reason.is_failure:
        close_client(client)
        raise BrokerConnectError(address, f"refused by the broker: {reason}", refused=True)
    log.debug("connected to %s as client id %s", address.redacted(), client_id)
    return client


def close_client(client: mqtt.Client) -> None:
    """Disconnect cleanly (no will is published) and stop the network thread."""
    client.disconnect()
    client.loop_stop()
