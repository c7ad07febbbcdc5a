"""Reports made while the broker is away are kept on disk and replayed in order on reconnect."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agents.buffer import ReportBuffer
from agents.identity import Identity
from agents.protocol import topic
from agents.runner import Agent
from agents.store import open_database
from tests.agents.support import PrivateBroker, Recorder, free_port, make_identity


def wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_reports_buffered_while_broker_down_replay_in_order_with_original_timestamps(
    make_agent: Callable[..., Agent],
    private_broker: PrivateBroker,
    device_id: str,
    signing_key: Ed25519PrivateKey,
) -> None:
    health = topic(device_id, "health")
    # A persistent session, so the broker keeps every report for this subscriber while it is
    # away, whoever reconnects first after the broker restarts.
    private_broker.start()
    subscriber = Recorder(private_broker.port, client_id=f"sub-{device_id}", clean_session=False)
    subscriber.subscribe(health)
    subscriber.close()
    private_broker.stop()

    agent = make_agent(make_identity(device_id, signing_key, port=private_broker.port))
    wait_for(lambda: agent.pending_reports >= 8)
    assert not agent.connected.is_set()
    broker_up_at = time.time()
    buffered = agent.last_seq
    private_broker.start()
    assert agent.wait_connected(10)
    wait_for(lambda: agent.last_seq >= buffered + 3 and agent.pending_reports <= 1)

    subscriber = Recorder(private_broker.port, client_id=f"sub-{device_id}", clean_session=False)
    try:
        assert subscriber.wait_until(lambda: len(subscriber.docs(health)) >= buffered + 3)
        reports = subscriber.docs(health)
    finally:
        subscriber.close()
    seqs = [r["seq"] for r in reports]
    assert seqs == list(range(1, len(seqs) + 1)), "out of order, duplicated or missing"
    assert all(r["ts"] < broker_up_at for r in reports[:buffered]), "timestamps were rewritten"
    timestamps = [r["ts"] for r in reports]
    assert timestamps == sorted(timestamps)
    assert reports[0]["ts"] < broker_up_at - 1.0  # made well before the broker came back


def test_broker_restart_mid_stream_loses_nothing_and_keeps_order(
    make_agent: Callable[..., Agent],
    private_broker: PrivateBroker,
    device_id: str,
    signing_key: Ed25519PrivateKey,
) -> None:
    health = topic(device_id, "health")
    private_broker.start()
    subscriber = Recorder(private_broker.port, client_id=f"sub-{device_id}", clean_session=False)
    subscriber.subscribe(health)
    subscriber.close()

    agent = make_agent(make_identity(device_id, signing_key, port=private_broker.port))
    assert agent.wait_connected(10)
    wait_for(lambda: agent.last_seq >= 5)
    private_broker.stop()
    wait_for(lambda: not agent.connected.is_set())
    down_at = agent.last_seq
    wait_for(lambda: agent.last_seq >= down_at + 5)
    private_broker.start()
    assert agent.wait_connected(10)
    made = agent.last_seq
    wait_for(lambda: agent.last_seq >= made + 2 and agent.pending_reports <= 1)

    subscriber = Recorder(private_broker.port, client_id=f"sub-{device_id}", clean_session=False)
    try:
        assert subscriber.wait_until(
            lambda: {d["seq"] for d in subscriber.docs(health)} >= set(range(1, made + 1))
        )
        reports = subscriber.docs(health)
    finally:
        subscriber.close()
    # A report whose PUBACK was lost with the connection is sent again (at least once);
    # apart from such repeats, every report arrives once, in the order it was made.
    first_seen = list(dict.fromkeys(r["seq"] for r in reports))
    assert first_seen == list(range(1, len(first_seen) + 1))
    assert len(reports) - len(first_seen) <= 50  # repeats are bounded by the send window


def test_full_buffer_drops_oldest_and_counts_them(
    make_agent: Callable[..., Agent],
    device_id: str,
    signing_key: Ed25519PrivateKey,
    identity: Identity,
    recorder: Recorder,
) -> None:
    nowhere = make_identity(device_id, signing_key, port=free_port())  # nothing listens there
    offline = make_agent(nowhere, buffer_max=5)
    wait_for(lambda: offline.last_seq >= 12)
    offline.stop()
    assert offline.pending_reports == 5
    made = offline.last_seq
    dropped = made - 5
    assert offline.dropped_reports == dropped

    # Same state directory, reachable broker; room for the report made before connecting.
    online = make_agent(identity, buffer_max=10)
    assert online.dropped_reports == dropped  # the count survives restarts
    health = topic(device_id, "health")
    assert recorder.wait_until(lambda: len(recorder.docs(health)) >= 7)
    reports = recorder.docs(health)
    assert [r["seq"] for r in reports[:5]] == list(range(made - 4, made + 1))
    assert [r["seq"] for r in reports[5:7]] == [made + 1, made + 2]
    assert reports[5]["metrics"]["buffer_dropped"] == dropped


def test_buffer_survives_reopening_and_forgets_only_acknowledged_reports(tmp_path: Path) -> None:
    conn = open_database(tmp_path)
    buffer = ReportBuffer(conn, max_reports=3)
    for seq in range(1, 6):
        buffer.append(seq, orjson.dumps({"seq": seq}))
    rows = buffer.after(0, 10)
    assert [orjson.loads(p)["seq"] for _, p in rows] == [3, 4, 5]
    buffer.remove([rows[0][0]])
    conn.close()

    reopened = ReportBuffer(open_database(tmp_path), max_reports=3)
    assert reopened.pending == 2
    assert reopened.dropped == 2
    assert [orjson.loads(p)["seq"] for _, p in reopened.after(0, 10)] == [4, 5]
    assert reopened.after(rows[-1][0], 10) == []


def test_buffer_refuses_a_zero_bound(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ReportBuffer(open_database(tmp_path), max_reports=0)
