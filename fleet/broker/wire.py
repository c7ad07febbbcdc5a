"""The part of MQTT 3.1.1 and 5 spoken without paho, where per-message cost decides.

Ingest receives every report in the estate over one or a few connections, so the cost of
turning bytes into messages sets its ceiling. A general client reads a packet per system call
and builds property objects per message; here a whole socket read is split into packets in
one pass and a PUBLISH becomes (topic, packet id, payload) with its properties skipped.
Encoded: CONNECT, SUBSCRIBE, PUBACK, PINGREQ and DISCONNECT for ingest, and QoS 1 PUBLISH
for the benchmark's load generator.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

MQTT_311 = 4
MQTT_5 = 5

CONNACK = 2
PUBLISH = 3
PUBACK = 4
SUBACK = 9
PINGRESP = 13
DISCONNECT = 14
AUTH = 15

PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"

# MQTT 5 property identifiers ingest sets on CONNECT.
_SESSION_EXPIRY_INTERVAL = 0x11
_RECEIVE_MAXIMUM = 0x21
_MAXIMUM_PACKET_SIZE = 0x27

_MAX_REMAINING_LENGTH = 268_435_455
_PUBACK = struct.Struct("!BBH")

_CONNACK_V311_REFUSALS = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
}


class MqttProtocolError(Exception):
    """The broker sent bytes that are not the MQTT we asked for; the connection must close."""


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    client_id: str
    protocol: int = MQTT_5
    clean_start: bool = False
    keepalive_s: int = 30
    username: str | None = None
    password: str | None = None
    session_expiry_s: int = 0
    receive_maximum: int = 65535
    maximum_packet_size: int = 1024 * 1024


def encode_varint(value: int) -> bytes:
    if not 0 <= value <= _MAX_REMAINING_LENGTH:
        raise ValueError(f"{value} cannot be an MQTT variable byte integer")
    out = bytearray()
    while True:
        digit, value = value & 0x7F, value >> 7
        out.append(digit | 0x80 if value else digit)
        if not value:
            return bytes(out)


def _string(text: str) -> bytes:
    data = text.encode("utf-8")
    if len(data) > 0xFFFF:
        raise ValueError("an MQTT string is at most 65,535 bytes")
    return struct.pack("!H", len(data)) + data


def _packet(first_byte: int, body: bytes) -> bytes:
    return bytes((first_byte,)) + encode_varint(len(body)) + body


def encode_connect(options: ConnectOptions) -> bytes:
    flags = 0x02 if options.clean_start else 0
    payload = _string(options.client_id)
    if options.username is not None:
        flags |= 0x80
        payload += _string(options.username)
        if options.password is not None:
            flags |= 0x40
            payload += _string(options.password)
    header = _string("MQTT") + bytes((options.protocol, flags))
    header += struct.pack("!H", options.keepalive_s)
    if options.protocol == MQTT_5:
        properties = struct.pack("!BI", _SESSION_EXPIRY_INTERVAL, options.session_expiry_s)
        properties += struct.pack("!BH", _RECEIVE_MAXIMUM, options.receive_maximum)
        # The broker drops, rather than sends, anything larger than we can take.
        properties += struct.pack("!BI", _MAXIMUM_PACKET_SIZE, options.maximum_packet_size)
        header += encode_varint(len(properties)) + properties
    return _packet(0x10, header + payload)


def encode_subscribe(packet_id: int, filters: Sequence[str], *, qos: int, protocol: int) -> bytes:
    body = struct.pack("!H", packet_id)
    if protocol == MQTT_5:
        body += b"\x00"  # no properties
    for topic_filter in filters:
        body += _string(topic_filter) + bytes((qos,))
    return _packet(0x82, body)


def encode_publish(topic: bytes, packet_id: int, payload: bytes) -> bytes:
    """A QoS 1 PUBLISH as MQTT 3.1.1 frames it."""
    return _packet(
        0x32, struct.pack("!H", len(topic)) + topic + struct.pack("!H", packet_id) + payload
    )


def encode_pubacks(packet_ids: Sequence[int]) -> bytes:
    """PUBACKs in one buffer; a success PUBACK has the same four bytes in both versions."""
    return b"".join(_PUBACK.pack(0x40, 2, packet_id) for packet_id in packet_ids)


def _varint_at(data: bytes, offset: int, end: int) -> tuple[int, int]:
    """(value, offset after it); (-1, offset) if the integer runs past `end`."""
    value = 0
    shift = 0
    while True:
        if offset >= end:
            return -1, offset
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
        shift += 7
        if shift > 21:
            raise MqttProtocolError("a variable byte integer is longer than four bytes")


class PacketReader:
    """Splits a byte stream into MQTT packets; feed() returns those it completes."""

    def __init__(self, max_packet: int) -> None:
        self.max_packet = max_packet
        self._pending = b""

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        """(packet type, flags, body) for each packet completed by `data`."""
        buffer = self._pending + data if self._pending else data
        end = len(buffer)
        offset = 0
        packets: list[tuple[int, int, bytes]] = []
        while offset + 2 <= end:
            first = buffer[offset]
            length, body_at = _varint_at(buffer, offset + 1, end)
            if length < 0:
                break
            if length > self.max_packet:
                raise MqttProtocolError(
                    f"a {length:,}-byte packet is over the {self.max_packet:,}-byte limit"
                )
            body_end = body_at + length
            if body_end > end:
                break
            packets.append((first >> 4, first & 0x0F, buffer[body_at:body_end]))
            offset = body_end
        self._pending = buffer[offset:]
        return packets


def parse_publish(flags: int, body: bytes, protocol: int) -> tuple[bytes, int, int, bytes]:
    """(topic as bytes, QoS, packet id or 0, payload) of a PUBLISH body."""
    qos = (flags >> 1) & 0x03
    if qos == 3:
        raise MqttProtocolError("PUBLISH with QoS 3")
    if len(body) < 2:
        raise MqttProtocolError("PUBLISH too short for its topic")
    topic_end = 2 + (body[0] << 8 | body[1])
    offset = topic_end
    packet_id = 0
    if qos:
        offset += 2
        if offset > len(body):
            raise MqttProtocolError("PUBLISH too short for its packet id")
        packet_id = body[topic_end] << 8 | body[topic_end + 1]
    if protocol == MQTT_5:
        properties, offset = _varint_at(body, offset, len(body))
        if properties < 0:
            raise MqttProtocolError("PUBLISH too short for its properties")
        offset += properties
    if offset > len(body):
        raise MqttProtocolError("PUBLISH shorter than its header says")
    return body[2:topic_end], qos, packet_id, body[offset:]


def parse_connack(body: bytes, protocol: int) -> tuple[bool, int, str]:
    """(session present, reason code, reason in words) of a CONNACK body."""
    if len(body) < 2:
        raise MqttProtocolError("CONNACK too short")
    session_present = bool(body[0] & 0x01)
    code = body[1]
    if protocol == MQTT_5:
        reason = "success" if code == 0 else f"reason code 0x{code:02x}"
        if code == 0x86:
            reason = "bad user name or password"
        elif code == 0x87:
            reason = "not authorised"
    else:
        reason = "accepted" if code == 0 else _CONNACK_V311_REFUSALS.get(code, f"code {code}")
    return session_present, code, reason


def parse_suback(body: bytes, protocol: int) -> tuple[int, list[int]]:
    """(packet id, granted QoS or reason code per filter) of a SUBACK body."""
    if len(body) < 3:
        raise MqttProtocolError("SUBACK too short")
    packet_id = body[0] << 8 | body[1]
    offset = 2
    if protocol == MQTT_5:
        properties, offset = _varint_at(body, offset, len(body))
        if properties < 0:
            raise MqttProtocolError("SUBACK too short for its properties")
        offset += properties
    return packet_id, list(body[offset:])


def disconnect_reason(body: bytes) -> int:
    """The reason code a broker gives when it disconnects us (MQTT 5); 0 when none is given."""
    return body[0] if body else 0
