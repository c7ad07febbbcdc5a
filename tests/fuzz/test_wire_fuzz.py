"""Property tests of ingest's MQTT packet reader: any bytes in, packets or a protocol error out."""

# ruff: noqa: PT017 - asserting on the refusal is the point of these properties

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.broker.wire import (
    MQTT_5,
    MQTT_311,
    PUBLISH,
    MqttProtocolError,
    PacketReader,
    encode_varint,
    parse_connack,
    parse_publish,
    parse_suback,
)


def publish_packet(
    topic: bytes, payload: bytes, packet_id: int, *, qos: int, protocol: int
) -> bytes:
    """A PUBLISH as a broker sends it; MQTT 5 ones carry a property a reader must skip."""
    body = struct.pack("!H", len(topic)) + topic
    if qos:
        body += struct.pack("!H", packet_id)
    if protocol == MQTT_5:
        message_expiry = b"\x02\x00\x00\x00\x3c"
        body += encode_varint(len(message_expiry)) + message_expiry
    body += payload
    return bytes((0x30 | qos << 1,)) + encode_varint(len(body)) + body


MESSAGES = st.lists(
    st.tuples(
        st.binary(min_size=1, max_size=80),
        st.binary(max_size=3000),
        st.integers(min_value=1, max_value=65535),
        st.sampled_from([0, 1]),
    ),
    min_size=1,
    max_size=20,
)


@settings(max_examples=300, deadline=None)
@given(MESSAGES, st.sampled_from([MQTT_311, MQTT_5]), st.lists(st.integers(1, 4000), max_size=8))
def test_publishes_split_at_any_read_boundary_come_out_whole_and_in_order(
    messages: list[tuple[bytes, bytes, int, int]], protocol: int, cuts: list[int]
) -> None:
    stream = b"".join(
        publish_packet(topic, payload, pid, qos=qos, protocol=protocol)
        for topic, payload, pid, qos in messages
    )
    reader = PacketReader(max_packet=1 << 20)
    packets = []
    start = 0
    for cut in [*sorted({min(c, len(stream)) for c in cuts}), len(stream)]:
        packets += reader.feed(stream[start:cut])
        start = max(start, cut)
    decoded = [parse_publish(flags, body, protocol) for kind, flags, body in packets]
    assert all(kind == PUBLISH for kind, _, _ in packets)
    expected = [(topic, qos, pid if qos else 0, payload) for topic, payload, pid, qos in messages]
    assert decoded == expected


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=4096), st.sampled_from([MQTT_311, MQTT_5]))
def test_arbitrary_bytes_give_packets_or_a_protocol_error_never_anything_else(
    garbage: bytes, protocol: int
) -> None:
    reader = PacketReader(max_packet=2048)
    try:
        packets = reader.feed(garbage)
        for kind, flags, body in packets:
            assert 0 <= kind <= 15
            assert 0 <= flags <= 15
            if kind == PUBLISH:
                topic, qos, packet_id, payload = parse_publish(flags, body, protocol)
                assert qos in (0, 1, 2)
                assert 0 <= packet_id <= 65535
                assert len(topic) + len(payload) <= len(body)
            elif kind == 2:
                parse_connack(body, protocol)
            elif kind == 9:
                parse_suback(body, protocol)
    except MqttProtocolError as exc:
        assert str(exc)


def test_a_packet_over_the_limit_is_refused_before_it_is_buffered() -> None:
    reader = PacketReader(max_packet=1000)
    with pytest.raises(MqttProtocolError, match="over the 1,000-byte limit"):
        reader.feed(b"\x32" + encode_varint(5000))


def test_a_variable_length_over_four_bytes_is_a_protocol_error() -> None:
    with pytest.raises(MqttProtocolError, match="longer than four bytes"):
        PacketReader(max_packet=1 << 20).feed(b"\x30\xff\xff\xff\xff\x01")


def test_refusals_in_connack_are_named() -> None:
    assert parse_connack(b"\x00\x05", MQTT_311) == (False, 5, "not authorised")
    assert parse_connack(b"\x01\x86\x00", MQTT_5) == (True, 0x86, "bad user name or password")
    assert parse_connack(b"\x00\x00\x00", MQTT_5) == (False, 0, "success")
