"""An agent given an mqtts:// URL reports and verifies signed commands over TLS."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agents.identity import Identity
from agents.protocol import public_key_b64, sign_envelope, topic
from agents.runner import Agent
from tests.agents.support import HOST, PrivateBroker, Recorder, free_port
from tests.deploy.certs import write_server_certificate


def test_agent_on_an_mqtts_url_reports_and_answers_signed_commands_over_tls(
    private_broker: PrivateBroker,
    make_agent: Callable[..., Agent],
    device_id: str,
    signing_key: Ed25519PrivateKey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    certificate = write_server_certificate(tmp_path / "certs")
    tls_port = free_port()
    with private_broker.config_path.open("a") as config:
        config.write(
            f"listener {tls_port} {HOST}\n"
            f"certfile {certificate.cert_file}\nkeyfile {certificate.key_file}\n"
        )
    private_broker.start()
    # The agent trusts the system's CAs; this makes the test CA one of them.
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate.ca_file))
    identity = Identity.from_document(
        {
            "device_id": device_id,
            "prison_code": "MDI",
            "mqtt": {"url": f"mqtts://{HOST}:{tls_port}", "username": device_id, "password": ""},
            "signing_public_key": public_key_b64(signing_key),
        }
    )
    recorder = Recorder(private_broker.port)
    try:
        recorder.subscribe(topic(device_id, "#"))
        agent = make_agent(identity)
        assert agent.wait_subscribed(10), private_broker.log_tail()
        assert recorder.wait_for_doc(topic(device_id, "health"), lambda doc: doc["seq"] >= 1)
        ping = {"action": "ping"}
        forged = sign_envelope(Ed25519PrivateKey.generate(), device_id, ping, envelope_id="f")
        recorder.publish(topic(device_id, "cmd"), forged)
        recorder.publish(topic(device_id, "cmd"), sign_envelope(signing_key, device_id, ping))
        replies = topic(device_id, "cmd/reply")
        assert recorder.wait_for_doc(replies, lambda doc: doc["id"] == "f") == {
            "id": "f",
            "status": "rejected",
            "output": "bad_signature",
        }
        assert recorder.wait_for_doc(replies, lambda doc: doc["output"] == "pong")
    finally:
        recorder.close()
    # Only the TLS listener is on tls_port, so the agent spoke TLS to be served there.
    assert f"New client connected from {HOST}" in private_broker.log_tail()
    assert f"on port {tls_port}" in private_broker.log_tail()
