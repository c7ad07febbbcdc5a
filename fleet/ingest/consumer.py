"""The ingest side of MQTT: persistent session, shared subscriptions, acknowledgement on demand.

paho's network thread only wraps each message as an `Inbound` and puts it on the inbox; the
writer acknowledges it (`ack`) after the batch holding it is durably stored. Until then the
broker keeps it and redelivers it if this process dies.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from agents.protocol import PREFIX
from fleet.broker.embedded import protocol_for
from fleet.broker.urls import make_client, parse_broker_url
from fleet.ingest.classify import Inbound
from fleet.settings import Settings

log = logging.getLogger(__name__)

CHANNELS = ("health", "state")
# MQTT 5's largest Receive Maximum: the broker may have this many reports in flight to us,
# which must comfortably exceed a batch since nothing is acknowledged until it is written.
RECEIVE_MAXIMUM = 65535
DEFAULT_SESSION_EXPIRY_S = 86400


class ReportConsumer:
    """One broker connection feeding `inbox`; `shared` selects `$share/<group>/` filters."""

    def __init__(
        self,
        settings: Settings,
        *,
        client_id: str,
        shared: bool,
        inbox: queue.SimpleQueue[Inbound],
        topic_root: str = "",
        session_expiry_s: int = DEFAULT_SESSION_EXPIRY_S,
        keepalive_s: int = 30,
    ) -> None:
        if topic_root and not topic_root.endswith("/"):
            raise ValueError(f"topic root {topic_root!r} must end with '/'")
        self.settings = settings
        self.client_id = client_id
        self.shared = shared
        self.inbox = inbox
        self.topic_root = topic_root
        self.session_expiry_s = session_expiry_s
        self.keepalive_s = keepalive_s
        self.address = parse_broker_url(settings.effective_mqtt_url)
        self.protocol = protocol_for(settings)
        self._client: mqtt.Client | None = None
        self._generation = 0
        self._generation_lock = threading.Lock()
        self._subscribed = threading.Event()

    @property
    def filters(self) -> list[str]:
        plain = [f"{self.topic_root}{PREFIX}/+/{channel}" for channel in CHANNELS]
        if not self.shared:
            return plain
        return [f"$share/{self.settings.mqtt_shared_group}/{topic}" for topic in plain]

    def start(self, *, stop: threading.Event | None = None, retry_s: float = 2.0) -> bool:
        """Connect (retrying until `stop` is set) and start the network thread; False if stopped."""
        client = make_client(
            self.address,
            self.client_id,
            protocol=self.protocol,
            clean_start=False,
            manual_ack=True,
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        options: dict[str, Any] = {}
        if self.protocol == MQTTProtocolVersion.MQTTv5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = self.session_expiry_s
            properties.ReceiveMaximum = RECEIVE_MAXIMUM
            options = {"clean_start": False, "properties": properties}
        while True:
            try:
                client.connect(self.address.host, self.address.port, self.keepalive_s, **options)
                break
            except OSError as exc:
                log.warning(
                    "MQTT broker %s unreachable (%s); retrying in %.0fs",
                    self.address.redacted(),
                    exc,
                    retry_s,
                )
                if stop is None or stop.wait(retry_s):
                    return False
        self._client = client
        client.loop_start()
        return True

    def wait_ready(self, timeout_s: float) -> bool:
        """Wait until the broker has confirmed the subscriptions."""
        return self._subscribed.wait(timeout_s)

    def ack(self, messages: Iterable[Inbound]) -> int:
        """Acknowledge, in order, messages that arrived on the current connection."""
        client = self._client
        if client is None:
            return 0
        acked = 0
        with self._generation_lock:
            current = self._generation
            for message in messages:
                if message.qos and message.generation == current:
                    client.ack(message.mid, message.qos)
                    acked += 1
        return acked

    def stop(self) -> None:
        """Disconnect after queued acknowledgements are sent; the session stays on the broker."""
        client = self._client
        if client is None:
            return
        client.disconnect()
        client.loop_stop()
        self._client = None

    # -- paho callbacks (network thread) ------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _ud: Any, flags: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("MQTT broker %s refused us: %s", self.address.redacted(), reason)
            return
        with self._generation_lock:
            self._generation += 1
        log.info(
            "connected to %s as %s (session present: %s); subscribing to %s",
            self.address.redacted(),
            self.client_id,
            getattr(flags, "session_present", "?"),
            ", ".join(self.filters),
        )
        if self.protocol == MQTTProtocolVersion.MQTTv5:
            client.subscribe([(topic, SubscribeOptions(qos=1)) for topic in self.filters])
        else:
            client.subscribe([(topic, 1) for topic in self.filters])

    def _on_disconnect(self, _c: mqtt.Client, _ud: Any, _flags: Any, reason: Any, _p: Any) -> None:
        # Message ids restart with each connection: anything in hand is acknowledged never,
        # and the broker redelivers it.
        with self._generation_lock:
            self._generation += 1
        self._subscribed.clear()
        if reason.is_failure:
            log.warning("MQTT connection to %s lost: %s", self.address.redacted(), reason)

    def _on_subscribe(self, _c: mqtt.Client, _ud: Any, _mid: int, codes: Any, _p: Any) -> None:
        refused = False
        for topic, code in zip(self.filters, codes, strict=False):
            if code.is_failure:
                refused = True
                log.error("subscription to %s refused by the broker: %s", topic, code)
        if not refused:
            self._subscribed.set()

    def _on_message(self, _c: mqtt.Client, _ud: Any, message: mqtt.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = "<topic is not UTF-8>"
        if self.topic_root and topic.startswith(self.topic_root):
            topic = topic[len(self.topic_root) :]
        self.inbox.put(
            Inbound(
                topic=topic,
                payload=bytes(message.payload),
                mid=message.mid,
                qos=message.qos,
                generation=self._generation,
                received_at=time.time(),
            )
        )
