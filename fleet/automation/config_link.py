"""The API process's broker link for desired configuration: publish retained, read reports."""

from __future__ import annotations

import logging
import os
import secrets
import threading
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from sqlalchemy import select

from agents.protocol import PREFIX, Rejected, parse_topic, topic
from fleet.automation.desired import record_report, signed_config
from fleet.automation.models import DesiredConfig
from fleet.broker.embedded import protocol_for, supports_shared_subscriptions
from fleet.broker.urls import BrokerConnectError, close_client, connect_client, parse_broker_url
from fleet.context import Context
from fleet.db import transaction, utcnow
from fleet.signing import load_signing_key

log = logging.getLogger(__name__)

REPORT_GROUP = "estate-api-config"
PUBACK_WAIT_S = 5.0
RECONNECT_S = 5.0
PENDING_BATCH = 500


def publish_config(client: mqtt.Client, device_id: str, envelope: bytes) -> bool:
    """Publish retained QoS 1 to the device's config topic; True once the broker has it."""
    info = client.publish(topic(device_id, "config"), envelope, qos=1, retain=True)
    if info.rc != mqtt.MQTT_ERR_SUCCESS:
        log.error("could not publish config to %s: %s", device_id, mqtt.error_string(info.rc))
        return False
    try:
        info.wait_for_publish(PUBACK_WAIT_S)
    except RuntimeError as exc:
        log.error("config for %s was not sent: %s", device_id, exc)
        return False
    return info.is_published()


def store_report(ctx: Context, message: mqtt.MQTTMessage) -> None:
    """Record one config/reported message from a device (logged, never raised)."""
    try:
        device_id, _channel = parse_topic(message.topic)
        report = orjson.loads(message.payload) if message.payload else None
    except (Rejected, orjson.JSONDecodeError) as exc:
        log.warning("ignoring a config report on %s: %s", message.topic[:200], exc)
        return
    try:
        with transaction(ctx.sessions) as session:
            row = record_report(session=session, device_id=device_id, report=report, now=utcnow())
    except Exception:
        log.exception("could not record the config report of %s", device_id)
        return
    if row is not None:
        log.info(
            "device %s reports config %d %s", device_id, row.reported_version, row.reported_status
        )


def publish_unpublished(ctx: Context, client: mqtt.Client) -> int:
    """Publish every stored version the broker never took; how many went out."""
    key = load_signing_key(ctx.settings)
    count = 0
    while True:
        with transaction(ctx.sessions) as session:
            rows = session.scalars(
                select(DesiredConfig)
                .where(DesiredConfig.published_at.is_(None))
                .order_by(DesiredConfig.device_id)
                .limit(PENDING_BATCH)
            ).all()
            sent = [
                row
                for row in rows
                if publish_config(client, row.device_id, signed_config(row, key))
            ]
            for row in sent:
                row.published_at = utcnow()
        count += len(sent)
        if len(sent) < PENDING_BATCH:
            return count


class ConfigLink:
    """One control-plane connection, opened on first use, listening for config reports."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._client: mqtt.Client | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._stopping = threading.Event()

    @property
    def report_filter(self) -> str:
        plain = f"{PREFIX}/+/config/reported"
        if supports_shared_subscriptions(self._ctx.settings):
            return f"$share/{REPORT_GROUP}/{plain}"
        return plain

    def _connected(self) -> mqtt.Client:
        with self._lock:
            if self._closed:
                address = parse_broker_url(self._ctx.settings.control_mqtt_url)
                raise BrokerConnectError(address, "the config link is closed")
            if self._client is None:
                self._client = connect_client(
                    parse_broker_url(self._ctx.settings.control_mqtt_url),
                    f"estate-api-config-{os.getpid()}-{secrets.token_hex(4)}",
                    protocol=protocol_for(self._ctx.settings),
                    on_connect=self._on_connect,
                    on_message=lambda _c, _u, message: store_report(self._ctx, message),
                )
            return self._client

    def start(self) -> None:
        """Connect in the background, retrying until the broker answers or the link closes."""
        threading.Thread(target=self._connect_until_closed, name="config-link", daemon=True).start()

    def _connect_until_closed(self) -> None:
        attempts = 0
        while not self._stopping.is_set():
            try:
                self._connected()
                return
            except BrokerConnectError as exc:
                level = logging.WARNING if attempts == 0 else logging.DEBUG
                log.log(level, "config reports cannot be read yet: %s; retrying", exc)
                attempts += 1
                self._stopping.wait(RECONNECT_S)

    def publish(self, device_id: str, envelope: bytes) -> bool:
        return publish_config(self._connected(), device_id, envelope)

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe(self.report_filter, qos=1)
        # Versions stored while the broker was unreachable go out now, off paho's thread.
        threading.Thread(
            target=self._publish_pending, args=(client,), name="config-pending", daemon=True
        ).start()

    def _publish_pending(self, client: mqtt.Client) -> None:
        try:
            published = publish_unpublished(self._ctx, client)
        except Exception:
            log.exception("could not publish the desired configurations still pending")
            return
        if published:
            log.info("published %d desired configuration(s) stored while offline", published)

    def close(self) -> None:
        self._stopping.set()
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
        if client is not None:
            close_client(client)
