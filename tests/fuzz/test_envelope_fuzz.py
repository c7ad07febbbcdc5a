"""Property tests of the other MQTT payload parsers: commands and desired configuration on the
agent, command replies on the control plane. Any input is refused with a reason or handled;
none escapes as an unexpected exception."""

# ruff: noqa: PT017 - asserting on the refusal is the point of these properties

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.commands import SeenNonces, verify_command
from agents.config import AppliedConfig, handle_desired_config
from agents.protocol import Rejected, sign_envelope
from agents.store import open_database
from fleet.commands import service
from fleet.commands.models import DeviceCommand
from fleet.context import Context
from fleet.db import transaction, utcnow
from tests.estate.factories import add_device

NOW = 1_800_000_000.0
DEVICE = "MDI-TAB-000001"
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUBLIC = KEY.public_key()
# What a JSON encoder can produce: 64-bit integers, UTF-8 text (no lone surrogates).
TEXT = st.text(st.characters(codec="utf-8"), max_size=20)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=15,
)
ENVELOPE_FIELDS = {"device_id", "id", "iat", "exp", "nonce", "action", "params", "version", "doc"}
ENVELOPES = st.fixed_dictionaries(
    {
        "payload": JSON | st.dictionaries(st.sampled_from(sorted(ENVELOPE_FIELDS)), JSON),
        "sig": TEXT | JSON,
    }
)


@pytest.fixture(scope="module")
def nonces(tmp_path_factory: pytest.TempPathFactory) -> SeenNonces:
    """The agent's nonce store (random nonces: examples never collide by chance)."""
    return SeenNonces(open_database(tmp_path_factory.mktemp("agent")))


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=2048) | ENVELOPES.map(orjson.dumps))
def test_anything_on_the_command_topic_but_a_signed_command_is_rejected(
    nonces: SeenNonces, raw: bytes
) -> None:
    try:
        verify_command(PUBLIC, DEVICE, raw, nonces, now=NOW)
    except Rejected as exc:
        assert exc.reason
    else:
        raise AssertionError(f"an unsigned envelope was accepted: {raw!r}")


@settings(max_examples=100, deadline=None)
@given(body=st.dictionaries(TEXT, JSON, max_size=5))
def test_signed_commands_of_any_body_verify_once_then_count_as_replayed(
    nonces: SeenNonces, body: dict[str, Any]
) -> None:
    raw = sign_envelope(KEY, DEVICE, body, now=NOW)
    payload = verify_command(PUBLIC, DEVICE, raw, nonces, now=NOW)
    assert payload["device_id"] == DEVICE
    try:
        verify_command(PUBLIC, DEVICE, raw, nonces, now=NOW)
    except Rejected as exc:
        assert exc.reason == "replayed"
    else:
        raise AssertionError("the same command was accepted twice")


@settings(max_examples=120, deadline=None)
@given(version=JSON, doc=JSON)
def test_signed_desired_config_of_any_shape_is_applied_or_reported_failed(
    version: Any, doc: Any
) -> None:
    raw = sign_envelope(KEY, DEVICE, {"version": version, "doc": doc})
    with tempfile.TemporaryDirectory() as tmp:
        applied = AppliedConfig(Path(tmp) / "config.json")
        report = handle_desired_config(raw, PUBLIC, DEVICE, applied)
    if isinstance(version, int) and version <= 0:  # a fresh agent has handled version 0
        assert report is None  # not newer than what was handled: ignored, as a retained resend
        return
    assert report is not None
    assert report["status"] in {"applied", "failed"}
    if report["status"] == "failed":
        assert report["error"]


@settings(max_examples=100, deadline=None)
@given(raw=st.binary(max_size=1024) | ENVELOPES.map(orjson.dumps))
def test_garbage_desired_config_is_reported_failed_never_applied(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        applied = AppliedConfig(Path(tmp) / "config.json")
        report = handle_desired_config(raw, PUBLIC, DEVICE, applied)
        assert applied.version == 0
    assert report is None or report["status"] == "failed"


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(reply=st.dictionaries(st.sampled_from(["id", "status", "output"]), JSON) | JSON)
def test_any_command_reply_is_recorded_or_ignored(pg_context: Context, reply: Any) -> None:
    """What the relay hands apply_reply after parsing a JSON object from cmd/reply."""
    if not isinstance(reply, dict):
        return  # the relay drops non-objects before apply_reply
    with transaction(pg_context.sessions) as session:
        device = add_device(session, prison="MDI")
        command = service.queue_command(
            session=session, actor="fuzz", device=device, action="ping", params={}, now=utcnow()
        )
        if reply.get("id") == "<the command>":
            reply = reply | {"id": command.id}
        answered = service.apply_reply(
            session=session, device_id=device.id, reply=reply, now=utcnow()
        )
        assert answered is None or isinstance(answered, DeviceCommand)
        if answered is not None:
            assert answered.status in service.REPLY_STATUSES
            assert len(answered.output) <= service.MAX_OUTPUT_CHARS


def test_a_reply_whose_status_is_a_list_is_ignored_not_an_error(pg_context: Context) -> None:
    """Found by the property above: `[] in frozenset(...)` raised TypeError in the relay."""
    with transaction(pg_context.sessions) as session:
        device = add_device(session, prison="MDI")
        command = service.queue_command(
            session=session, actor="fuzz", device=device, action="ping", params={}, now=utcnow()
        )
        unhashable: list[object] = [[], {}, ["done"]]
        for status in unhashable:
            reply = {"id": command.id, "status": status, "output": "x"}
            assert (
                service.apply_reply(session=session, device_id=device.id, reply=reply, now=utcnow())
                is None
            )
        assert command.status == "queued"
