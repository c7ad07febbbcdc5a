"""Enrolment and the `estate agent` command line.

The redeem endpoint is played by a minimal stand-in implementing the documented contract
(POST /api/v1/enrolments/redeem), until the control plane's own endpoint is tested end to end.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agents import AGENT_VERSION
from agents.cli import agent as agent_command
from agents.enrol import EnrolmentError, redeem
from agents.identity import load_identity
from agents.protocol import public_key_b64, topic
from tests.agents.support import Recorder

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ContractServer:
    """Answers redeem requests from a table of token -> (status, JSON body)."""

    url: str
    answers: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    received: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def contract_server() -> Iterator[ContractServer]:
    state = ContractServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.received.append({"path": self.path, "body": body})
            status, answer = state.answers.get(
                body.get("token"), (404, {"detail": "unknown token"})
            )
            raw = orjson.dumps(answer)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output quiet

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


def issued(device_id: str, key: Ed25519PrivateKey) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "prison_code": "MDI",
        "mqtt": {"url": "mqtt://127.0.0.1:1883", "username": device_id, "password": "s3cret"},
        "signing_public_key": public_key_b64(key),
        "config": {"health_interval_s": 30},
    }


def test_enrol_against_contract_server_saves_identity_privately(
    contract_server: ContractServer, device_id: str, signing_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    contract_server.answers["tok-1"] = (201, issued(device_id, signing_key))
    identity = redeem(contract_server.url + "/", "tok-1", serial="SN-42", kind="laptop")
    assert identity.device_id == device_id
    assert identity.mqtt_password == "s3cret"
    assert identity.config == {"health_interval_s": 30}
    request = contract_server.received[0]
    assert request["path"] == "/api/v1/enrolments/redeem"
    assert request["body"]["token"] == "tok-1"
    assert request["body"]["serial"] == "SN-42"
    assert request["body"]["agent"] == AGENT_VERSION
    assert request["body"]["hostname"]


@pytest.mark.parametrize(
    ("status", "detail", "advice"),
    [
        (409, "token already used", "already been used"),
        (410, "token expired", "expired"),
        (404, "unknown token", "not known"),
        (422, [{"loc": ["body", "serial"], "msg": "Field required"}], "serial: Field required"),
    ],
)
def test_enrol_against_contract_server_refusals_show_message_and_next_step(
    contract_server: ContractServer,
    tmp_path: Path,
    status: int,
    detail: Any,
    advice: str,
) -> None:
    contract_server.answers["bad"] = (status, {"detail": detail})
    state_dir = tmp_path / "state"
    result = CliRunner().invoke(
        agent_command,
        [
            "--enrol",
            "bad",
            "--server",
            contract_server.url,
            "--state-dir",
            str(state_dir),
            "--serial",
            "SN",
        ],
    )
    assert result.exit_code != 0
    assert f"HTTP {status}" in result.output
    assert advice in result.output
    if isinstance(detail, str):
        assert detail in result.output
    assert not (state_dir / "identity.json").exists()


def test_enrol_against_contract_server_rejects_an_unusable_identity(
    contract_server: ContractServer, device_id: str, signing_key: Ed25519PrivateKey
) -> None:
    answer = issued(device_id, signing_key)
    answer["signing_public_key"] = "bm90IGEga2V5"
    contract_server.answers["tok"] = (201, answer)
    with pytest.raises(EnrolmentError, match="32-byte Ed25519 key"):
        redeem(contract_server.url, "tok", serial="SN")


def test_enrol_unreachable_server_says_what_to_check(tmp_path: Path) -> None:
    from tests.agents.support import free_port

    with pytest.raises(EnrolmentError, match="Check the --server URL"):
        redeem(f"http://127.0.0.1:{free_port()}", "tok", serial="SN", timeout_s=5)


def test_enrol_against_contract_server_then_run_until_sigterm(
    contract_server: ContractServer,
    device_id: str,
    signing_key: Ed25519PrivateKey,
    recorder: Recorder,
    tmp_path: Path,
) -> None:
    contract_server.answers["tok-2"] = (201, issued(device_id, signing_key))
    state_dir = tmp_path / "state"
    command = [sys.executable, "-m", "agents.cli", "--enrol", "tok-2", "--server"]
    command += [contract_server.url, "--state-dir", str(state_dir), "--serial", "SN-7"]
    command += ["--kind", "laptop", "--interval", "0.2"]
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        recorder.wait_for_doc(topic(device_id, "health"), lambda d: True, 20)
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr.decode()
    assert f"Enrolled as {device_id} at MDI" in stdout.decode()
    recorder.wait_for_doc(topic(device_id, "state"), lambda d: d["state"] == "offline")
    assert (state_dir / "identity.json").stat().st_mode & 0o777 == 0o600
    saved = load_identity(state_dir)
    assert saved is not None
    assert (saved.device_id, saved.serial, saved.kind) == (device_id, "SN-7", "laptop")
    assert contract_server.received[0]["body"]["kind"] == "laptop"

    again = CliRunner().invoke(
        agent_command,
        ["--enrol", "tok-3", "--server", contract_server.url, "--state-dir", str(state_dir)],
    )
    assert again.exit_code != 0
    assert f"already enrolled as {device_id}" in again.output
    assert "--force" in again.output


def test_run_without_identity_tells_the_person_to_enrol(tmp_path: Path) -> None:
    result = CliRunner().invoke(agent_command, ["--state-dir", str(tmp_path / "empty")])
    assert result.exit_code == 1
    assert "No device identity" in result.output
    assert "estate agent --enrol TOKEN --server URL" in result.output


def test_enrol_needs_a_server(tmp_path: Path) -> None:
    result = CliRunner().invoke(agent_command, ["--enrol", "tok", "--state-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "--enrol needs --server URL" in result.output


def test_help_explains_enrolment_and_running() -> None:
    result = CliRunner().invoke(agent_command, ["--help"])
    assert result.exit_code == 0
    for text in ("--enrol TOKEN --server", "estate agent", "--state-dir", "ESTATE_AGENT_STATE_DIR"):
        assert text in result.output
