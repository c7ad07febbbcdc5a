"""Fixtures for the agent tests: signing keys, unique device ids, recorders and agents."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agents.backoff import Backoff
from agents.identity import Identity
from agents.protocol import topic
from agents.runner import Agent
from tests.agents.support import PrivateBroker, Recorder, clear_retained, make_identity


def fixed_metrics() -> dict[str, float]:
    return {"battery": 80.0, "charging": 1, "cpu": 3.5}


@pytest.fixture
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def device_id() -> Iterator[str]:
    """A device id no other test uses; its retained messages are removed afterwards."""
    name = f"t-{uuid.uuid4().hex[:16]}"
    yield name
    clear_retained(name)


@pytest.fixture
def identity(device_id: str, signing_key: Ed25519PrivateKey) -> Identity:
    return make_identity(device_id, signing_key)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def recorder(device_id: str) -> Iterator[Recorder]:
    """Subscribed to everything under the test device's subtree on the shared broker."""
    rec = Recorder()
    rec.subscribe(topic(device_id, "#"))
    yield rec
    rec.close()


@pytest.fixture
def make_agent(state_dir: Path) -> Iterator[Callable[..., Agent]]:
    """Build and start agents (fast reports, fast reconnects); stops any still running."""
    started: list[Agent] = []

    def build(identity: Identity, **options: Any) -> Agent:
        options.setdefault("metrics", fixed_metrics)
        options.setdefault("interval_s", 0.2)
        options.setdefault("backoff", Backoff(initial_s=0.05, cap_s=0.3))
        agent = Agent(identity, options.pop("state_dir", state_dir), **options)
        agent.start()
        started.append(agent)
        return agent

    yield build
    for agent in started:
        agent.stop()
        assert agent.failure is None, f"agent failed: {agent.failure!r}"


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    broker = PrivateBroker(tmp_path / "broker")
    yield broker
    broker.stop()
