"""Signed commands and desired configuration, end to end through the shared Mosquitto."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agents.commands import ActionFailed, ActionRegistry, default_actions
from agents.identity import Identity
from agents.protocol import sign_envelope, topic
from agents.runner import Agent
from tests.agents.support import Recorder


def send_command(recorder: Recorder, device_id: str, envelope: bytes) -> None:
    recorder.publish(topic(device_id, "cmd"), envelope)


def reply_for(recorder: Recorder, device_id: str, command_id: str) -> dict[str, Any]:
    return recorder.wait_for_doc(topic(device_id, "cmd/reply"), lambda d: d["id"] == command_id)


def test_valid_ping_is_done_with_pong(
    make_agent: Callable[..., Agent],
    identity: Identity,
    device_id: str,
    recorder: Recorder,
    signing_key: Ed25519PrivateKey,
) -> None:
    assert make_agent(identity).wait_subscribed(10)
    send_command(
        recorder,
        device_id,
        sign_envelope(signing_key, device_id, {"action": "ping"}, envelope_id="c1"),
    )
    assert reply_for(recorder, device_id, "c1") == {"id": "c1", "status": "done", "output": "pong"}


def test_expired_replayed_forged_and_foreign_commands_are_rejected_with_reasons(
    make_agent: Callable[..., Agent],
    identity: Identity,
    device_id: str,
    recorder: Recorder,
    signing_key: Ed25519PrivateKey,
) -> None:
    assert make_agent(identity).wait_subscribed(10)
    ping = {"action": "ping"}
    expired = sign_envelope(
        signing_key, device_id, ping, now=time.time() - 600, ttl_s=60, envelope_id="old"
    )
    forged = sign_envelope(Ed25519PrivateKey.generate(), device_id, ping, envelope_id="forged")
    foreign = sign_envelope(signing_key, "someone-else", ping, envelope_id="foreign")
    once = sign_envelope(signing_key, device_id, ping, envelope_id="once")

    for envelope in (expired, forged, foreign, once, once):
        send_command(recorder, device_id, envelope)

    assert reply_for(recorder, device_id, "old")["output"] == "expired"
    assert reply_for(recorder, device_id, "forged")["output"] == "bad_signature"
    assert reply_for(recorder, device_id, "foreign")["output"] == "foreign"
    assert recorder.wait_until(
        lambda: (
            len([d for d in recorder.docs(topic(device_id, "cmd/reply")) if d["id"] == "once"]) == 2
        )
    )
    once_replies = [d for d in recorder.docs(topic(device_id, "cmd/reply")) if d["id"] == "once"]
    assert once_replies == [
        {"id": "once", "status": "done", "output": "pong"},
        {"id": "once", "status": "rejected", "output": "replayed"},
    ]
    rejected = [d for d in recorder.docs(topic(device_id, "cmd/reply")) if d["id"] != "once"]
    assert {d["status"] for d in rejected} == {"rejected"}


def test_seen_nonces_survive_a_restart(
    make_agent: Callable[..., Agent],
    identity: Identity,
    device_id: str,
    recorder: Recorder,
    signing_key: Ed25519PrivateKey,
) -> None:
    first = make_agent(identity)
    assert first.wait_subscribed(10)
    envelope = sign_envelope(signing_key, device_id, {"action": "ping"}, envelope_id="r1")
    send_command(recorder, device_id, envelope)
    assert reply_for(recorder, device_id, "r1")["status"] == "done"
    first.stop()

    assert make_agent(identity).wait_subscribed(10)
    send_command(recorder, device_id, envelope)
    assert recorder.wait_until(lambda: len(recorder.docs(topic(device_id, "cmd/reply"))) == 2)
    replies = recorder.docs(topic(device_id, "cmd/reply"))
    assert replies[1] == {"id": "r1", "status": "rejected", "output": "replayed"}


def test_unknown_actions_fail_and_registered_actions_run(
    make_agent: Callable[..., Agent],
    identity: Identity,
    device_id: str,
    recorder: Recorder,
    signing_key: Ed25519PrivateKey,
) -> None:
    def echo(command: dict[str, Any]) -> str:
        return f"echo {command['text']}"

    def refuse(command: dict[str, Any]) -> str:
        raise ActionFailed("disk is read-only")

    actions: ActionRegistry = default_actions()
    actions.register("echo", echo)
    actions.register("refuse", refuse)
    assert make_agent(identity, actions=actions).wait_subscribed(10)
    for action, command_id in (("reboot", "u1"), ("echo", "e1"), ("refuse", "f1")):
        body = {"action": action, "text": "hi"}
        send_command(
            recorder, device_id, sign_envelope(signing_key, device_id, body, envelope_id=command_id)
        )

    assert reply_for(recorder, device_id, "u1") == {
        "id": "u1",
        "status": "failed",
        "output": "unsupported action: reboot",
    }
    assert reply_for(recorder, device_id, "e1") == {
        "id": "e1",
        "status": "done",
        "output": "echo hi",
    }
    assert reply_for(recorder, device_id, "f1") == {
        "id": "f1",
        "status": "failed",
        "output": "disk is read-only",
    }


def desired(key: Ed25519PrivateKey, device_id: str, version: int, doc: dict[str, Any]) -> bytes:
    return sign_envelope(key, device_id, {"version": version, "doc": doc}, ttl_s=86_400)


def test_desired_config_is_applied_persisted_and_reported(
    make_agent: Callable[..., Agent],
    identity: Identity,
    device_id: str,
    recorder: Recorder,
    signing_key: Ed25519PrivateKey,
) -> None:
    recorder.publish(
        topic(device_id, "config"),
        desired(signing_key, device_id, 3, {"health_interval_s": 2, "future_setting": "x"}),
        retain=True,
    )
    agent = make_agent(identity, interval_s=None)  # the config decides the interval
    assert agent.interval_s == 60  # from enrolment, until the desired config arrives
    reported = recorder.wait_for_doc(topic(device_id, "config/reported"), lambda d: True)
    assert reported == {"version": 3, "status": "applied", "error": None}
    assert agent.interval_s == 2
    assert agent.config_version == 3
    recorder.wait_for_doc(
        topic(device_id, "state"), lambda d: d["state"] == "online" and d["config_version"] == 3
    )
    agent.stop()

    late = Recorder()  # the report is retained for whoever looks later
    try:
        late.subscribe(topic(device_id, "config/reported"))
        assert late.wait_until(lambda: bool(late.messages))
        assert late.messages[0].retain
    finally:
        late.close()

    again = make_agent(identity, interval_s=None)  # same state directory
    assert again.interval_s == 2
    assert again.config_version == 3
    recorder.wait_for_doc(
        topic(device_id, "state"), lambda d: d["state"] == "online" and d["boot"] == 2
    )
    time.sleep(0.5)  # the retained config is redelivered; it must not be reported twice
    assert len(recorder.docs(topic(device_id, "config/reported"))) == 1


def test_invalid_or_forged_desired_config_is_reported_failed(
    make_agent: Callable[..., Agent],
    identity: Identity,
    device_id: str,
    recorder: Recorder,
    signing_key: Ed25519PrivateKey,
) -> None:
    agent = make_agent(identity, interval_s=None)
    assert agent.wait_subscribed(10)
    config_topic, reported_topic = topic(device_id, "config"), topic(device_id, "config/reported")

    recorder.publish(config_topic, desired(signing_key, device_id, 4, {"health_interval_s": 0}))
    bad = recorder.wait_for_doc(reported_topic, lambda d: d["version"] == 4)
    assert bad["status"] == "failed"
    assert "health_interval_s" in bad["error"]

    forged = desired(Ed25519PrivateKey.generate(), device_id, 5, {"health_interval_s": 5})
    recorder.publish(config_topic, forged)
    refused = recorder.wait_for_doc(reported_topic, lambda d: d["version"] == 5)
    assert refused == {"version": 5, "status": "failed", "error": "bad_signature"}
    assert agent.interval_s == 60
    assert agent.config_version == 0
