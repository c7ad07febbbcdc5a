"""The agent's side of remote requests, without a broker: sandbox, chunks, dedup, signatures."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agents.protocol import sign_envelope
from agents.remote import EXEC, FETCH, PUT, RemoteRequests
from agents.remote_ops import (
    CHUNK_BYTES,
    RequestFailed,
    RequestRefused,
    Sandbox,
    read_chunk,
    write_chunk,
)
from agents.remote_store import RemoteStore

DEVICE = "MDI-LAP-000001"


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    box = Sandbox(tmp_path / "sandbox", (tmp_path / "logs",))
    box.prepare()
    (tmp_path / "logs").mkdir()
    return box


def _chunk(path: Path, data: bytes, *, offset: int = 0, final: bool = True, **extra: Any) -> dict:
    params = {
        "path": str(path),
        "transfer": "t1",
        "offset": offset,
        "data": base64.b64encode(data).decode(),
        "final": final,
    }
    return {**params, **extra}


def test_paths_outside_the_allowed_directories_are_refused(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    assert sandbox.check(str(sandbox.root / "a.txt"), must_exist=False) == sandbox.root / "a.txt"
    assert sandbox.check(str(tmp_path / "logs" / "x"), must_exist=False) == tmp_path / "logs" / "x"
    for bad in ("relative.txt", str(tmp_path / "elsewhere"), str(sandbox.root / ".." / "x"), ""):
        with pytest.raises(RequestRefused):
            sandbox.check(bad, must_exist=False)
    (sandbox.root / "escape").symlink_to(tmp_path)  # a link inside pointing outside
    with pytest.raises(RequestRefused, match="outside the allowed directories"):
        sandbox.check(str(sandbox.root / "escape" / "secret"), must_exist=False)
    with pytest.raises(RequestRefused, match="outside"):
        write_chunk(_chunk(tmp_path / "planted", b"x"), sandbox)
    assert not (tmp_path / "planted").exists()


def test_a_file_arrives_in_chunks_and_is_renamed_only_when_its_checksum_matches(
    sandbox: Sandbox,
) -> None:
    target = sandbox.root / "motd"
    data = os.urandom(CHUNK_BYTES + 10)
    first, rest = data[:CHUNK_BYTES], data[CHUNK_BYTES:]
    assert write_chunk(_chunk(target, first, final=False), sandbox) == {"received": CHUNK_BYTES}
    assert not target.exists(), "nothing at the destination before the last chunk"
    with pytest.raises(RequestFailed, match="does not follow"):
        write_chunk(_chunk(target, rest, offset=5, final=False), sandbox)
    done = write_chunk(
        _chunk(target, rest, offset=CHUNK_BYTES, sha256=hashlib.sha256(data).hexdigest()),
        sandbox,
    )
    assert target.read_bytes() == data
    assert done["sha256"] == hashlib.sha256(data).hexdigest()
    assert [p.name for p in sandbox.root.iterdir()] == ["motd"], "no temporary file left"

    with pytest.raises(RequestFailed, match="checksum mismatch"):
        write_chunk(_chunk(target, b"other", sha256="0" * 64), sandbox)
    assert target.read_bytes() == data, "a damaged upload never replaces the file"
    assert [p.name for p in sandbox.root.iterdir()] == ["motd"]


def test_a_file_is_read_in_chunks_with_the_whole_checksum_at_the_end(sandbox: Sandbox) -> None:
    source = sandbox.root / "agent.log"
    data = os.urandom(CHUNK_BYTES + 3)
    source.write_bytes(data)
    head = read_chunk({"path": str(source), "offset": 0}, sandbox)
    tail = read_chunk({"path": str(source), "offset": CHUNK_BYTES}, sandbox)
    assert (head["eof"], tail["eof"]) == (False, True)
    assert "sha256" not in head
    assert tail["sha256"] == hashlib.sha256(data).hexdigest()
    assert base64.b64decode(head["data"]) + base64.b64decode(tail["data"]) == data


def _requests(tmp_path: Path, key: Ed25519PrivateKey, sandbox: Sandbox) -> RemoteRequests:
    return RemoteRequests(key.public_key(), DEVICE, tmp_path, sandbox)


def _finished(remote: RemoteRequests, timeout_s: float = 10) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    replies: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not replies:
        replies = remote.finished_replies()
        time.sleep(0.01)
    return replies


def test_requests_are_verified_and_a_redelivery_is_answered_from_the_store(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    key = Ed25519PrivateKey.generate()
    remote = _requests(tmp_path, key, sandbox)
    try:
        body = {"action": EXEC, "params": {"cmd": "echo ran >> runs; cat runs", "timeout": 5}}
        envelope = sign_envelope(key, DEVICE, body, envelope_id="r1")
        assert remote.handle(envelope)["status"] == "accepted"
        (done,) = _finished(remote)
        assert done["status"] == "done"
        assert base64.b64decode(done["output"]["stdout"]) == b"ran\n"
        assert remote.handle(envelope) == done, "answered from the store, not run again"
        assert (sandbox.root / "runs").read_text() == "ran\n"

        forged = sign_envelope(Ed25519PrivateKey.generate(), DEVICE, body, envelope_id="f1")
        other = sign_envelope(key, "MDI-LAP-999999", body, envelope_id="o1")
        stale = sign_envelope(key, DEVICE, body, ttl_s=1, now=time.time() - 60, envelope_id="e1")
        unknown = sign_envelope(key, DEVICE, {"action": "remote.format", "params": {}})
        reasons = [
            remote.handle(raw)["output"]["reason"]
            for raw in (forged, other, stale, b"not json", unknown)
        ]
        assert reasons == ["bad_signature", "foreign", "expired", "malformed_json", "unsupported"]
        assert (sandbox.root / "runs").read_text() == "ran\n", "nothing refused ever ran"
        outside = {"action": FETCH, "params": {"path": "/etc/hostname"}}
        assert remote.handle(sign_envelope(key, DEVICE, outside, envelope_id="p1"))["status"] == (
            "accepted"
        )
        (refused,) = _finished(remote)
        assert (refused["status"], refused["output"]["reason"]) == ("rejected", "refused")
        put = {"action": PUT, "params": _chunk(sandbox.root / "x", b"x", sha256="bad")}
        remote.handle(sign_envelope(key, DEVICE, put, envelope_id="p2"))
        (mismatch,) = _finished(remote)
        assert mismatch["status"] == "failed"
        assert "checksum mismatch" in mismatch["output"]["error"]
    finally:
        remote.shutdown()


def test_a_request_cut_short_by_a_restart_is_failed_not_run_again(tmp_path: Path) -> None:
    store = RemoteStore(tmp_path)
    assert store.claim("r1", int(time.time()) + 60, now=time.time()) is None
    store.close()
    again = RemoteStore(tmp_path)
    try:
        answer = again.claim("r1", int(time.time()) + 60, now=time.time())
        assert answer is not None
        assert answer["status"] == "failed"
        assert "restarted" in answer["output"]["error"]
        assert orjson.loads(orjson.dumps(answer)) == answer
    finally:
        again.close()
