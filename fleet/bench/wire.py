"""A pipelined MQTT 3.1.1 QoS 1 publisher that costs the benchmark little CPU.

paho spends about 70% of a core to publish 19,000 QoS 1 messages a second (one socket write
and one Python object per message), CPU that on a two-core machine is taken from the ingest
being measured. Real devices publish from elsewhere, so the load generator writes whole
runs of PUBLISH packets with one `sendall` and counts PUBACKs from the stream instead.
"""

from __future__ import annotations

import contextlib
import socket

from fleet.broker.urls import BrokerAddress
from fleet.broker.wire import MQTT_311, ConnectOptions, encode_connect, encode_publish

CONNACK, PUBACK = 0x20, 0x40
MAX_MID = 65535


class WireError(ConnectionError):
    """The broker refused the connection or broke the protocol."""


def connect_packet(client_id: str, username: str | None, password: str | None) -> bytes:
    """CONNECT with a clean session and keep-alive off (the stream itself shows liveness)."""
    return encode_connect(
        ConnectOptions(
            client_id,
            protocol=MQTT_311,
            clean_start=True,
            keepalive_s=0,
            username=username,
            password=password,
        )
    )


class WirePublisher:
    """One connection: `send` queues PUBLISH packets, `flush` writes them, `poll` counts acks."""

    def __init__(self, address: BrokerAddress, client_id: str, *, timeout_s: float = 10.0) -> None:
        if address.tls:
            raise WireError("the benchmark publisher speaks plain MQTT only: use mqtt://")
        self._timeout_s = timeout_s
        self._sock = socket.create_connection((address.host, address.port), timeout=timeout_s)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.sendall(connect_packet(client_id, address.username, address.password))
        reply = self._recv_exactly(4)
        if reply[0] != CONNACK or reply[3] != 0:
            raise WireError(f"broker refused the connection (CONNACK {reply.hex()})")
        self._pending: list[bytes] = []
        self._buffer = b""
        self._mid = 0
        self.sent = 0
        self.acked = 0

    def send(self, topic: bytes, payload: bytes) -> None:
        self._mid = self._mid % MAX_MID + 1
        self._pending.append(encode_publish(topic, self._mid, payload))

    def flush(self) -> None:
        if self._pending:
            self._sock.settimeout(self._timeout_s)  # poll() may have left it non-blocking
            self._sock.sendall(b"".join(self._pending))
            self.sent += len(self._pending)
            self._pending.clear()

    def poll(self, timeout_s: float) -> int:
        """Read what the broker sent within `timeout_s`; returns the PUBACKs counted so far."""
        self._sock.settimeout(timeout_s)
        try:
            chunk = self._sock.recv(65536)
        except (TimeoutError, BlockingIOError):
            return self.acked
        if not chunk:
            raise WireError("broker closed the connection")
        self._buffer += chunk
        self._count_acks()
        return self.acked

    def wait_acked(self, timeout_s: float) -> bool:
        """Flush and wait until every publish is acknowledged."""
        self.flush()
        self._sock.settimeout(timeout_s)
        while self.acked < self.sent:
            try:
                chunk = self._sock.recv(65536)
            except (TimeoutError, BlockingIOError):
                return False
            if not chunk:
                raise WireError("broker closed the connection")
            self._buffer += chunk
            self._count_acks()
        return True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.sendall(b"\xe0\x00")  # DISCONNECT
        self._sock.close()

    def _count_acks(self) -> None:
        buffer, at = self._buffer, 0
        # PUBACK is the only packet a QoS 1 publisher without subscriptions receives: 4 bytes.
        while len(buffer) - at >= 4:
            if buffer[at] != PUBACK or buffer[at + 1] != 2:
                raise WireError(f"unexpected packet from the broker: {buffer[at : at + 4].hex()}")
            at += 4
            self.acked += 1
        self._buffer = buffer[at:]

    def _recv_exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self._sock.recv(size - len(data))
            if not chunk:
                raise WireError("broker closed the connection during CONNECT")
            data += chunk
        return data
