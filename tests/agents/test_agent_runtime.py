"""The agent against the real Mosquitto on 127.0.0.1:1883: birth, health, will, shutdown."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from agents import AGENT_VERSION
from agents.identity import Identity, save_identity
from agents.protocol import parse_health, parse_state, topic
from agents.runner import Agent
from tests.agents.support import Recorder

REPO_ROOT = Path(__file__).resolve().parents[2]


def health_seqs(recorder: Recorder, device_id: str) -> list[int]:
    return [doc["seq"] for doc in recorder.docs(topic(device_id, "health"))]


def test_birth_is_retained_and_carries_boot_agent_and_config_version(
    make_agent: Callable[..., Agent], identity: Identity, device_id: str
) -> None:
    agent = make_agent(identity)
    assert agent.wait_connected(10)
    late = Recorder()  # subscribes after the birth was published: sees it only if retained
    try:
        late.subscribe(topic(device_id, "state"))
        birth = late.wait_for_doc(topic(device_id, "state"), lambda d: d["state"] == "online")
        assert late.messages[0].retain
    finally:
        late.close()
    assert birth["boot"] == 1
    assert birth["agent"] == AGENT_VERSION
    assert birth["config_version"] == 0
    report = parse_state(device_id, bytes(late.messages[0].payload))
    assert report.state == "online"


def test_health_reports_arrive_with_strictly_increasing_seq_and_valid_metrics(
    make_agent: Callable[..., Agent], identity: Identity, device_id: str, recorder: Recorder
) -> None:
    make_agent(identity, metrics=None)  # the machine's own psutil readings
    assert recorder.wait_until(lambda: len(health_seqs(recorder, device_id)) >= 5)
    messages = [m for m in recorder.messages if m.topic == topic(device_id, "health")]
    reports = [parse_health(device_id, bytes(m.payload)) for m in messages]
    seqs = [r.seq for r in reports]
    assert seqs == list(range(1, len(seqs) + 1))
    assert all(a.ts < b.ts for a, b in itertools.pairwise(reports))
    metrics = reports[-1].metrics
    assert {"cpu", "memory", "storage", "uptime_s", "buffer_dropped"} <= set(metrics)
    assert 0 <= metrics["memory"] <= 100
    assert metrics["buffer_dropped"] == 0


def test_seq_continues_after_restart_without_reuse(
    make_agent: Callable[..., Agent], identity: Identity, device_id: str, recorder: Recorder
) -> None:
    first = make_agent(identity)
    assert recorder.wait_until(lambda: len(health_seqs(recorder, device_id)) >= 3)
    first.stop()
    before = health_seqs(recorder, device_id)
    second = make_agent(identity)
    assert second.boot == 2
    assert recorder.wait_until(lambda: len(health_seqs(recorder, device_id)) >= len(before) + 3)
    after = health_seqs(recorder, device_id)[len(before) :]
    assert min(after) == max(before) + 1  # a clean stop gives back the unused reservation
    assert after == sorted(set(after))
    births = [d for d in recorder.docs(topic(device_id, "state")) if d["state"] == "online"]
    assert [d["boot"] for d in births] == [1, 2]


def test_clean_stop_publishes_offline(
    make_agent: Callable[..., Agent], identity: Identity, device_id: str, recorder: Recorder
) -> None:
    agent = make_agent(identity)
    recorder.wait_for_doc(topic(device_id, "state"), lambda d: d["state"] == "online")
    agent.stop()
    offline = recorder.wait_for_doc(topic(device_id, "state"), lambda d: d["state"] == "offline")
    assert offline["boot"] == 1
    assert not agent.connected.is_set()
    states = [d["state"] for d in recorder.docs(topic(device_id, "state"))]
    assert "lost" not in states


def test_abort_without_disconnect_yields_the_lost_will(
    make_agent: Callable[..., Agent], identity: Identity, device_id: str, recorder: Recorder
) -> None:
    agent = make_agent(identity)
    recorder.wait_for_doc(topic(device_id, "state"), lambda d: d["state"] == "online")
    agent.abort()
    lost = recorder.wait_for_doc(topic(device_id, "state"), lambda d: d["state"] == "lost")
    assert lost["boot"] == 1


def _start_agent_process(state_dir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "agents.cli", "--state-dir", str(state_dir), "--interval", "0.2"],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_kill_9_yields_lost_will_and_restart_never_reuses_a_seq(
    identity: Identity,
    device_id: str,
    state_dir: Path,
    recorder: Recorder,
) -> None:
    save_identity(state_dir, identity)
    process = _start_agent_process(state_dir)
    try:
        assert recorder.wait_until(lambda: len(health_seqs(recorder, device_id)) >= 3, 20)
    finally:
        process.send_signal(signal.SIGKILL)
        _, stderr = process.communicate(timeout=10)
    killed_at = time.time()
    lost = recorder.wait_for_doc(topic(device_id, "state"), lambda d: d["state"] == "lost")
    assert lost["boot"] == 1
    before = max(health_seqs(recorder, device_id))

    process = _start_agent_process(state_dir)
    try:
        recorder.wait_for_doc(
            topic(device_id, "state"), lambda d: d["state"] == "online" and d["boot"] == 2, 20
        )
        assert recorder.wait_until(lambda: max(health_seqs(recorder, device_id)) > before, 20)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr.decode()
    reports = recorder.docs(topic(device_id, "health"))
    # A report unacknowledged at the kill may be delivered again (at least once), but always
    # as the same report: one seq never names two different reports.
    by_seq: dict[int, bytes] = {}
    for report in reports:
        assert by_seq.setdefault(report["seq"], orjson.dumps(report)) == orjson.dumps(report)
    made_after_restart = [r["seq"] for r in reports if r["ts"] > killed_at]
    assert made_after_restart
    assert min(made_after_restart) > before
    offline = recorder.wait_for_doc(topic(device_id, "state"), lambda d: d["state"] == "offline")
    assert offline["boot"] == 2
