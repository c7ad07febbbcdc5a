"""The API process's broker link for commands: publish QoS 1 and read the devices' replies.

Replies are read here rather than in ingest because the API process is the one that knows a
command was sent, and it logs in as the estate-control role whose ACL reads cmd/reply; ingest
stays a health/state pipeline. A shared subscription lets several API workers split replies.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from typing import Any

import orjson
import paho.mqtt.client as mqtt

from agents.protocol import PREFIX, Rejected, parse_topic, topic
from fleet.automation.link import REQUEST_ID_PREFIX
from fleet.broker.embedded import protocol_for, supports_shared_subscriptions
from fleet.broker.urls import BrokerConnectError, close_client, connect_client, parse_broker_url
from fleet.commands.service import apply_reply
from fleet.context import Context
from fleet.db import transaction, utcnow

log = logging.getLogger(__name__)

REPLY_GROUP = "estate-api"
PUBACK_WAIT_S = 5.0
RECONNECT_S = 5.0


class CommandRelay:
    """One control-plane broker connection, opened on first use and closed with the app."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._client: mqtt.Client | None = None
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._closed = threading.Event()
        self._starter: threading.Thread | None = None

    def start(self) -> None:
        """Connect in the background (retrying) so replies are read before any command is sent."""
        self._starter = threading.Thread(
            target=self._connect_until_closed, name="command-relay", daemon=True
        )
        self._starter.start()

    def _connect_until_closed(self) -> None:
        attempts = 0
        while not self._closed.is_set():
            try:
                self._connected()
                if attempts:
                    log.info("command replies are read again after %d failed attempts", attempts)
                return
            except BrokerConnectError as exc:
                # Warn once, then quietly: a broker that is down is reported, not shouted about.
                level = logging.WARNING if attempts == 0 else logging.DEBUG
                log.log(
                    level,
                    "command replies cannot be read yet: %s; retrying every %gs",
                    exc,
                    RECONNECT_S,
                )
                attempts += 1
                self._closed.wait(RECONNECT_S)

    @property
    def reply_filter(self) -> str:
        plain = f"{PREFIX}/+/cmd/reply"
        if supports_shared_subscriptions(self._ctx.settings):
            return f"$share/{REPLY_GROUP}/{plain}"
        return plain

    def _connected(self) -> mqtt.Client:
        with self._lock:
            if self._closed.is_set():
                raise BrokerConnectError(
                    parse_broker_url(self._ctx.settings.control_mqtt_url), "the relay is closed"
                )
            if self._client is None:
                address = parse_broker_url(self._ctx.settings.control_mqtt_url)
                self._client = connect_client(
                    address,
                    f"estate-api-{os.getpid()}-{secrets.token_hex(4)}",
                    protocol=protocol_for(self._ctx.settings),
                    on_connect=self._on_connect,
                    on_message=self._on_message,
                )
            return self._client

    def wait_listening(self, timeout_s: float) -> bool:
        """Connect if needed and wait until the broker confirms the reply subscription."""
        self._connected()
        return self._subscribed.wait(timeout_s)

    def publish(self, device_id: str, envelope: bytes, *, timeout_s: float = PUBACK_WAIT_S) -> bool:
        """Publish QoS 1 to the device's cmd topic; True once the broker acknowledged it."""
        client = self._connected()
        self._subscribed.wait(timeout_s)  # listen for the reply before the device can answer
        info = client.publish(topic(device_id, "cmd"), envelope, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            log.error(
                "could not publish a command to %s: %s", device_id, mqtt.error_string(info.rc)
            )
            return False
        try:
            info.wait_for_publish(timeout_s)
        except RuntimeError as exc:
            log.error("command to %s was not sent: %s", device_id, exc)
            return False
        return info.is_published()

    def close(self) -> None:
        self._closed.set()
        if self._starter is not None:
            self._starter.join(timeout=2)  # a daemon thread; a connect in progress is bounded
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            close_client(client)

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        self._subscribed.clear()
        client.on_subscribe = self._on_subscribe
        client.subscribe(self.reply_filter, qos=1)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, codes: Any, _p: Any) -> None:
        refused = [str(code) for code in codes if code.is_failure]
        if refused:
            log.error("broker refused the command reply subscription: %s", refused)
        else:
            self._subscribed.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            device_id, _channel = parse_topic(message.topic)
            reply = orjson.loads(message.payload)
        except (Rejected, orjson.JSONDecodeError) as exc:
            log.warning("ignoring a command reply on %s: %s", message.topic[:200], exc)
            return
        if not isinstance(reply, dict):
            log.warning("ignoring a command reply from %s that is not an object", device_id)
            return
        reply_id = reply.get("id")
        if isinstance(reply_id, str) and reply_id.startswith(REQUEST_ID_PREFIX):
            return  # a job gateway's remote request: that gateway reads its own replies
        try:
            with transaction(self._ctx.sessions) as session:
                command = apply_reply(
                    session=session, device_id=device_id, reply=reply, now=utcnow()
                )
        except Exception:
            log.exception(
                "could not record the reply from %s to command %r", device_id, reply.get("id")
            )
            return
        if command is None:
            log.info("reply from %s matches no open command (%r)", device_id, reply.get("id"))
        else:
            log.info("command %s on %s: %s", command.id, device_id, command.status)
