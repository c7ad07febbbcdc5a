"""Device protocol v1: topics, payload validation and signed envelopes.

Shared by the agent, the simulator and ingest; kept free of FastAPI and SQLAlchemy.
"""

from __future__ import annotations

import base64
import math
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from agents.ed25519 import SignatureKey, public_key_from_bytes, signature_valid

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

PREFIX = "estate/v1/dev"
DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
STATES = ("online", "offline", "lost")
MAX_METRICS = 64
MAX_METRIC_NAME = 40
METRIC_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_PYTHON_PATH = 200
# The interpreter path lands in inventories and command lines: plain path characters only.
PYTHON_PATH_RE = re.compile(r"[A-Za-z0-9/._+-]+")


def topic(device_id: str, channel: str) -> str:
    """The topic for one device's channel, e.g. topic('MDI-1', 'health')."""
    return f"{PREFIX}/{device_id}/{channel}"


def device_topics(device_id: str) -> dict[str, list[str]]:
    """What the broker lets a device publish to and subscribe to (its own subtree only)."""
    return {
        "publish": [
            topic(device_id, c) for c in ("state", "health", "cmd/reply", "config/reported")
        ],
        "subscribe": [topic(device_id, c) for c in ("cmd", "config")],
    }


class Rejected(Exception):
    """A message the pipeline refuses; `reason` is a short stable label used for counting."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def parse_topic(name: str) -> tuple[str, str]:
    """Split estate/v1/dev/{id}/{channel...} into (device_id, channel)."""
    parts = name.split("/", 4)
    if len(parts) != 5 or "/".join(parts[:3]) != PREFIX:
        raise Rejected("bad_topic", name[:200])
    device_id, channel = parts[3], parts[4]
    if not DEVICE_ID_RE.match(device_id):
        raise Rejected("bad_device_id", device_id[:80])
    return device_id, channel


@dataclass(frozen=True, slots=True)
class HealthReport:
    device_id: str
    seq: int
    ts: float
    metrics: dict[str, float]


@dataclass(frozen=True, slots=True)
class StateReport:
    device_id: str
    state: str
    boot: int
    ts: float
    agent: str = ""
    config_version: int = 0
    python: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _loads(payload: bytes, max_bytes: int) -> dict[str, Any]:
    if len(payload) > max_bytes:
        raise Rejected("too_large", f"{len(payload)} bytes > {max_bytes}")
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise Rejected("malformed_json", str(exc)[:200]) from None
    if not isinstance(doc, dict):
        raise Rejected("wrong_type", "payload must be a JSON object")
    return doc


def _int_field(doc: dict[str, Any], name: str) -> int:
    value = doc.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise Rejected("wrong_type", f"{name} must be an integer")
    if not 0 <= value < 2**63:
        raise Rejected("out_of_range", f"{name} out of range")
    return value


def _ts_field(doc: dict[str, Any], now: float, future_skew: float) -> float:
    value = doc.get("ts")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Rejected("wrong_type", "ts must be a number of seconds since the epoch")
    if value > now + future_skew:
        raise Rejected("future_timestamp", f"ts {value:.0f} is ahead of now {now:.0f}")
    if value < 946684800:  # 2000-01-01: older is a clock that was never set
        raise Rejected("out_of_range", "ts before 2000-01-01")
    return float(value)


def parse_health(
    device_id: str,
    payload: bytes,
    *,
    now: float | None = None,
    max_bytes: int = 65536,
    future_skew: float = 300,
) -> HealthReport:
    doc = _loads(payload, max_bytes)
    now = time.time() if now is None else now
    seq = _int_field(doc, "seq")
    ts = _ts_field(doc, now, future_skew)
    raw = doc.get("metrics")
    if not isinstance(raw, dict):
        raise Rejected("wrong_type", "metrics must be an object of numbers")
    if len(raw) > MAX_METRICS:
        raise Rejected("too_many_metrics", f"{len(raw)} > {MAX_METRICS}")
    metrics: dict[str, float] = {}
    for key, value in raw.items():
        if not METRIC_NAME_RE.match(key):
            raise Rejected("bad_metric_name", key[:MAX_METRIC_NAME])
        if isinstance(value, bool):
            value = int(value)
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise Rejected("wrong_type", f"metric {key} must be a finite number")
        metrics[key] = float(value)
    return HealthReport(device_id=device_id, seq=seq, ts=ts, metrics=metrics)


def parse_state(
    device_id: str,
    payload: bytes,
    *,
    now: float | None = None,
    max_bytes: int = 65536,
    future_skew: float = 300,
) -> StateReport:
    doc = _loads(payload, max_bytes)
    now = time.time() if now is None else now
    state = doc.get("state")
    if state not in STATES:
        raise Rejected("bad_state", f"state must be one of {', '.join(STATES)}")
    boot = _int_field(doc, "boot")
    ts = _ts_field(doc, now, future_skew)
    agent = doc.get("agent", "")
    if not isinstance(agent, str) or len(agent) > 32:
        raise Rejected("wrong_type", "agent must be a short version string")
    config_version = doc.get("config_version", 0)
    if isinstance(config_version, bool) or not isinstance(config_version, int):
        raise Rejected("wrong_type", "config_version must be an integer")
    python = doc.get("python", "")
    if not isinstance(python, str):
        raise Rejected("wrong_type", "python must be a string: the interpreter's absolute path")
    if python and (problem := python_path_problem(python)):
        raise Rejected("bad_python", problem)
    return StateReport(device_id, state, boot, ts, agent, config_version, python)


def python_path_problem(path: str) -> str | None:
    """Why `path` cannot be reported as the device's Python interpreter, or None if it can."""
    if len(path) > MAX_PYTHON_PATH:
        return f"python path is {len(path)} characters, more than {MAX_PYTHON_PATH}"
    if not path.startswith("/"):
        return "python must be an absolute path"
    if not PYTHON_PATH_RE.fullmatch(path):
        return "python path may hold only letters, digits and / . _ - +"
    if ".." in path.split("/"):
        return "python path must not contain '..'"
    return None


def dumps(doc: Any) -> bytes:
    return orjson.dumps(doc)


def canonical(doc: Any) -> bytes:
    """Deterministic bytes for signing: sorted keys, no whitespace."""
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


# --- signed envelopes (commands and desired configuration) ---------------------------------


def public_key_b64(key: Ed25519PrivateKey) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def load_public_key(b64: str) -> SignatureKey:
    """The verifying key for a base64 Ed25519 public key (libcrypto's, else cryptography's)."""
    return public_key_from_bytes(base64.b64decode(b64))


def sign_envelope(
    key: Ed25519PrivateKey,
    device_id: str,
    body: dict[str, Any],
    *,
    ttl_s: int = 300,
    now: float | None = None,
    envelope_id: str | None = None,
) -> bytes:
    """Wrap `body` with device_id, id, iat, exp and nonce, and sign it."""
    now = time.time() if now is None else now
    payload = {
        **body,
        "device_id": device_id,
        "id": envelope_id or secrets.token_hex(8),
        "iat": int(now),
        "exp": int(now + ttl_s),
        "nonce": secrets.token_hex(12),
    }
    sig = key.sign(canonical(payload))
    return dumps({"payload": payload, "sig": base64.b64encode(sig).decode()})


def verify_envelope(
    public_key: SignatureKey,
    device_id: str,
    raw: bytes,
    *,
    now: float | None = None,
    seen_nonces: set[str] | None = None,
) -> dict[str, Any]:
    """Return the signed payload or raise Rejected with the reason the agent replies with."""
    doc = _loads(raw, 1024 * 1024)
    payload, sig = doc.get("payload"), doc.get("sig")
    if not isinstance(payload, dict) or not isinstance(sig, str):
        raise Rejected("malformed_envelope", "expected {payload, sig}")
    try:
        signature = base64.b64decode(sig)
    except ValueError:
        raise Rejected("bad_signature", "signature does not verify") from None
    if not signature_valid(public_key, signature, canonical(payload)):
        raise Rejected("bad_signature", "signature does not verify")
    if payload.get("device_id") != device_id:
        raise Rejected("foreign", "command addressed to another device")
    now = time.time() if now is None else now
    exp = payload.get("exp")
    if not isinstance(exp, int) or exp < now:
        raise Rejected("expired", "command expired")
    nonce = payload.get("nonce")
    if seen_nonces is not None:
        if not isinstance(nonce, str) or nonce in seen_nonces:
            raise Rejected("replayed", "command already seen")
        seen_nonces.add(nonce)
    return payload
