"""The Python interpreter from state messages lands on device_state; stale messages never win."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agents.backoff import Backoff
from agents.interpreter import system_python
from agents.runner import Agent
from fleet.context import Context
from tests.agents.support import clear_retained, make_identity
from tests.ingest.conftest import (
    Publisher,
    add_devices,
    running_pipeline,
    state_of,
    wait_for,
)


def state(name: str, boot: int, ts: float, python: str | None = None) -> bytes:
    doc: dict[str, object] = {"state": name, "boot": boot, "agent": "1.0.0", "ts": ts}
    if python is not None:
        doc["python"] = python
    return orjson.dumps(doc)


def test_a_real_agent_reports_its_interpreter_and_ingest_stores_it(
    sql_only: Context, tmp_path: Path
) -> None:
    (device,) = add_devices(sql_only, 1)
    identity = make_identity(device, Ed25519PrivateKey.generate())
    agent = Agent(
        identity,
        tmp_path / "agent",
        metrics=lambda: {"cpu": 1.0},
        interval_s=30,
        backoff=Backoff(initial_s=0.05, cap_s=0.3),
    )
    try:
        # The agent publishes on the real topics, so ingest listens without a test root.
        with running_pipeline(sql_only, ""):
            agent.start()
            assert agent.wait_connected(10)
            wait_for(lambda: state_of(sql_only, device).online, 10, "the agent's birth")
            agent.stop()
            assert agent.failure is None, f"agent failed: {agent.failure!r}"
            wait_for(lambda: state_of(sql_only, device).state == "offline", 10, "the shutdown")
    finally:
        agent.stop()
        clear_retained(device)

    row = state_of(sql_only, device)
    assert row.python_interpreter == system_python() != ""
    assert row.python_interpreter == agent.python


def test_newer_state_sets_the_interpreter_and_stale_or_silent_ones_keep_it(
    sql_only: Context, root: str, publisher: Publisher
) -> None:
    (device,) = add_devices(sql_only, 1)
    now = time.time()
    with running_pipeline(sql_only, root) as running:
        publisher.send(device, "state", state("online", 2, now - 60, "/usr/bin/python3"))
        wait_for(lambda: state_of(sql_only, device).boot == 2, what="boot 2's birth")
        assert state_of(sql_only, device).python_interpreter == "/usr/bin/python3"

        # A late will from boot 1 carries what that boot found: it must not win.
        publisher.send(device, "state", state("lost", 1, now - 50, "/usr/local/bin/python3"))
        wait_for(lambda: running.rejected("stale_state") == 1, what="the late will counted")
        assert state_of(sql_only, device).python_interpreter == "/usr/bin/python3"

        # An agent that does not report an interpreter leaves the known one in place.
        publisher.send(device, "state", state("online", 3, now - 40))
        wait_for(lambda: state_of(sql_only, device).boot == 3, what="boot 3's birth")
        assert state_of(sql_only, device).python_interpreter == "/usr/bin/python3"

        publisher.send(
            device, "state", state("online", 4, now - 30, "/usr/libexec/platform-python")
        )
        wait_for(lambda: state_of(sql_only, device).boot == 4, what="boot 4's birth")

    assert state_of(sql_only, device).python_interpreter == "/usr/libexec/platform-python"


def test_a_state_with_a_bad_interpreter_is_refused_and_changes_nothing(
    sql_only: Context, root: str, publisher: Publisher
) -> None:
    (device,) = add_devices(sql_only, 1)
    now = time.time()
    with running_pipeline(sql_only, root) as running:
        publisher.send(device, "state", state("online", 1, now - 20, "/usr/bin/python3"))
        wait_for(lambda: state_of(sql_only, device).online, what="the birth")
        publisher.send(device, "state", state("online", 2, now - 10, "../python3 && reboot"))
        wait_for(lambda: running.rejected("bad_python") == 1, what="the bad state counted")

    row = state_of(sql_only, device)
    assert (row.boot, row.python_interpreter) == (1, "/usr/bin/python3")
