"""The ingest side of MQTT: persistent session, shared subscriptions, acknowledgement on demand.

A network thread reads the socket, splits what it reads into messages (see `wire`) and puts
each on the inbox as an `Inbound`; the writer acknowledges them (`ack`) after the batch holding
them is durably stored. Until then the broker keeps them and redelivers them if this process
dies. Acknowledgements go out in one write per batch.
"""

from __future__ import annotations

import logging
import queue
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterable

from paho.mqtt.enums import MQTTProtocolVersion

from agents.protocol import PREFIX
from fleet.broker.embedded import protocol_for
from fleet.broker.urls import BrokerAddress, parse_broker_url
from fleet.broker.wire import (
    AUTH,
    CONNACK,
    DISCONNECT,
    DISCONNECT_PACKET,
    MQTT_5,
    MQTT_311,
    PINGREQ_PACKET,
    PINGRESP,
    PUBLISH,
    SUBACK,
    ConnectOptions,
    MqttProtocolError,
    PacketReader,
    disconnect_reason,
    encode_connect,
    encode_pubacks,
    encode_subscribe,
    parse_connack,
    parse_publish,
    parse_suback,
)
from fleet.ingest.classify import Inbound
from fleet.settings import Settings

log = logging.getLogger(__name__)

CHANNELS = ("health", "state")
# MQTT 5's largest Receive Maximum: the broker may have this many reports in flight to us,
# which must comfortably exceed a batch since nothing is acknowledged until it is written.
RECEIVE_MAXIMUM = 65535
DEFAULT_SESSION_EXPIRY_S = 86400
READ_SIZE = 256 * 1024
SOCKET_TIMEOUT_S = 10.0
SUBSCRIBE_PACKET_ID = 1


class ConnectionLost(Exception):
    """The broker went away or told us to; the session resumes on the next connection."""


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
        v5 = protocol_for(settings) == MQTTProtocolVersion.MQTTv5
        self.protocol = MQTT_5 if v5 else MQTT_311
        self.max_packet = max(1024 * 1024, 4 * settings.ingest_max_payload)
        # One lock for the socket: TLS cannot read and write from two threads at once, and a
        # batch's acknowledgements must never reach a newer connection (packet ids restart).
        self._io_lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._reader = PacketReader(self.max_packet)
        self._generation = 0
        self._last_sent = 0.0
        self._subscribed = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def filters(self) -> list[str]:
        plain = [f"{self.topic_root}{PREFIX}/+/{channel}" for channel in CHANNELS]
        if not self.shared:
            return plain
        return [f"$share/{self.settings.mqtt_shared_group}/{topic}" for topic in plain]

    def start(self, *, stop: threading.Event | None = None, retry_s: float = 2.0) -> bool:
        """Connect (retrying until `stop` is set) and start the network thread; False if stopped."""
        while True:
            try:
                first = self._connect()
                break
            except (OSError, MqttProtocolError, ConnectionLost) as exc:
                log.warning(
                    "MQTT broker %s unreachable (%s); retrying in %.0fs",
                    self.address.redacted(),
                    exc,
                    retry_s,
                )
                if stop is None or stop.wait(retry_s):
                    return False
        self._thread = threading.Thread(
            target=self._run, args=(first,), name=f"mqtt-{self.client_id}", daemon=True
        )
        self._thread.start()
        return True

    def wait_ready(self, timeout_s: float) -> bool:
        """Wait until the broker has confirmed the subscriptions."""
        return self._subscribed.wait(timeout_s)

    def ack(self, messages: Iterable[Inbound]) -> int:
        """Acknowledge, in one write, messages that arrived on the current connection."""
        with self._io_lock:
            current = self._generation
            ids = [m.mid for m in messages if m.qos and m.generation == current]
            if not ids or self._sock is None:
                return 0
            try:
                self._send_locked(encode_pubacks(ids))
            except OSError as exc:
                # The network thread sees the connection is gone; the broker redelivers.
                log.warning("could not acknowledge %d messages: %s", len(ids), exc)
                return 0
        return len(ids)

    def stop(self) -> None:
        """Disconnect after acknowledgements already made; the session stays on the broker."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(SOCKET_TIMEOUT_S + 5)
            if self._thread.is_alive():
                log.error("the MQTT network thread of %s did not stop", self.client_id)
            self._thread = None

    # -- the connection ---------------------------------------------------------------------

    def _connect(self) -> list[tuple[int, int, bytes]]:
        """Open, log in and subscribe; the packets that followed the CONNACK."""
        sock = _open_socket(self.address)
        try:
            options = ConnectOptions(
                client_id=self.client_id,
                protocol=self.protocol,
                clean_start=False,
                keepalive_s=self.keepalive_s,
                username=self.address.username,
                password=self.address.password,
                session_expiry_s=self.session_expiry_s,
                receive_maximum=RECEIVE_MAXIMUM,
                maximum_packet_size=self.max_packet,
            )
            sock.sendall(encode_connect(options))
            reader = PacketReader(self.max_packet)
            packets = _read_until_first_packet(sock, reader, SOCKET_TIMEOUT_S)
            kind, _flags, body = packets[0]
            if kind != CONNACK:
                raise MqttProtocolError(f"the broker answered CONNECT with packet type {kind}")
            session_present, code, reason = parse_connack(body, self.protocol)
            if code:
                log.error("MQTT broker %s refused us: %s", self.address.redacted(), reason)
                raise ConnectionLost(f"refused: {reason}")
            sock.sendall(
                encode_subscribe(SUBSCRIBE_PACKET_ID, self.filters, qos=1, protocol=self.protocol)
            )
        except BaseException:
            sock.close()
            raise
        with self._io_lock:
            self._sock = sock
            self._reader = reader
            self._generation += 1
            self._last_sent = time.monotonic()
        log.info(
            "connected to %s as %s (session present: %s); subscribing to %s",
            self.address.redacted(),
            self.client_id,
            session_present,
            ", ".join(self.filters),
        )
        return packets[1:]

    def _drop_connection(self, *, polite: bool) -> None:
        with self._io_lock:
            sock, self._sock = self._sock, None
            # Messages in hand can never be acknowledged now: the broker redelivers them.
            self._generation += 1
            self._subscribed.clear()
            if sock is None:
                return
            if polite:
                try:
                    sock.sendall(DISCONNECT_PACKET)
                except OSError as exc:
                    log.info("DISCONNECT not sent to %s: %s", self.address.redacted(), exc)
            sock.close()

    def _run(self, first: list[tuple[int, int, bytes]]) -> None:
        delay = 1.0
        pending = first
        while not self._stopping.is_set():
            if self._sock is None:
                if self._stopping.wait(delay):
                    break
                try:
                    pending = self._connect()
                    delay = 1.0
                except (OSError, MqttProtocolError, ConnectionLost) as exc:
                    delay = min(30.0, delay * 2)
                    log.warning(
                        "MQTT broker %s unreachable (%s); retrying in %.0fs",
                        self.address.redacted(),
                        exc,
                        delay,
                    )
                    continue
            try:
                self._serve(pending)
            except (OSError, MqttProtocolError, ConnectionLost) as exc:
                if not self._stopping.is_set():
                    log.warning("MQTT connection to %s lost: %s", self.address.redacted(), exc)
                self._drop_connection(polite=isinstance(exc, MqttProtocolError))
            pending = []
        self._drop_connection(polite=True)

    def _serve(self, pending: list[tuple[int, int, bytes]]) -> None:
        """Read and dispatch until stopped; raises when the connection is lost."""
        sock = self._sock
        assert sock is not None
        reader = self._reader
        self._dispatch(pending)
        last_heard = time.monotonic()
        while not self._stopping.is_set():
            buffered = sock.pending() if isinstance(sock, ssl.SSLSocket) else 0
            readable: list[socket.socket] = []
            if not buffered:
                readable, _, _ = select.select([sock], [], [], 0.5)
            if buffered or readable:
                with self._io_lock:
                    try:
                        data = sock.recv(READ_SIZE)
                    except (BlockingIOError, ssl.SSLWantReadError):
                        data = None
                if data == b"":
                    raise ConnectionLost("the broker closed the connection")
                if data:
                    last_heard = time.monotonic()
                    self._dispatch(reader.feed(data))
            now = time.monotonic()
            if now - self._last_sent >= self.keepalive_s / 2:
                with self._io_lock:
                    self._send_locked(PINGREQ_PACKET)
            if now - last_heard > self.keepalive_s * 1.5:
                raise ConnectionLost(f"nothing from the broker for {now - last_heard:.0f}s")

    def _dispatch(self, packets: list[tuple[int, int, bytes]]) -> None:
        if not packets:
            return
        put = self.inbox.put
        root = self.topic_root
        cut = len(root)
        generation = self._generation
        protocol = self.protocol
        received_at = time.time()
        for kind, flags, body in packets:
            if kind == PUBLISH:
                raw_topic, qos, packet_id, payload = parse_publish(flags, body, protocol)
                if qos > 1:
                    raise MqttProtocolError("QoS 2 delivery on a QoS 1 subscription")
                try:
                    topic = raw_topic.decode("utf-8")
                except UnicodeDecodeError:
                    topic = "<topic is not UTF-8>"
                if cut and topic.startswith(root):
                    topic = topic[cut:]
                put(Inbound(topic, payload, packet_id, qos, generation, received_at))
            elif kind == SUBACK:
                self._on_suback(body)
            elif kind == PINGRESP:
                continue
            elif kind == DISCONNECT:
                raise ConnectionLost(
                    f"the broker disconnected us (reason code 0x{disconnect_reason(body):02x})"
                )
            elif kind in (CONNACK, AUTH) or kind not in range(1, 16):
                raise MqttProtocolError(f"unexpected packet type {kind} from the broker")

    def _on_suback(self, body: bytes) -> None:
        _packet_id, codes = parse_suback(body, self.protocol)
        refused = False
        for topic, code in zip(self.filters, codes, strict=False):
            if code >= 0x80:
                refused = True
                log.error("subscription to %s refused by the broker: code 0x%02x", topic, code)
        if not refused:
            self._subscribed.set()

    def _send_locked(self, data: bytes) -> None:
        assert self._sock is not None
        self._sock.sendall(data)
        self._last_sent = time.monotonic()


def _open_socket(address: BrokerAddress) -> socket.socket:
    sock = socket.create_connection((address.host, address.port), timeout=SOCKET_TIMEOUT_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if not address.tls:
        return sock
    context = ssl.create_default_context(cafile=address.ca_file)
    try:
        return context.wrap_socket(sock, server_hostname=address.host)
    except BaseException:
        sock.close()
        raise


def _read_until_first_packet(
    sock: socket.socket, reader: PacketReader, timeout_s: float
) -> list[tuple[int, int, bytes]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        data = sock.recv(READ_SIZE)
        if not data:
            raise ConnectionLost("the broker closed the connection before CONNACK")
        packets = reader.feed(data)
        if packets:
            return packets
    raise ConnectionLost(f"no CONNACK within {timeout_s:.0f}s")
