"""Desired configuration pushed by the control plane: validation and the applied copy on disk."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from agents.commands import unverified_field
from agents.desired import SectionError, apply_sections, check_sections
from agents.ed25519 import SignatureKey
from agents.protocol import Rejected, verify_envelope
from agents.state import StateError, read_json_file, write_file_atomically

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
DEFAULT_HEALTH_INTERVAL_S = 60.0
MIN_HEALTH_INTERVAL_S = 1.0
MAX_HEALTH_INTERVAL_S = 86_400.0


class ConfigError(Exception):
    """A configuration document the agent refuses; the message is reported to the control plane."""


def health_interval_from(doc: dict[str, Any]) -> float | None:
    """The doc's `health_interval_s` after validation, None when the doc does not set it."""
    if "health_interval_s" not in doc:
        return None
    value = doc["health_interval_s"]
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not MIN_HEALTH_INTERVAL_S <= value <= MAX_HEALTH_INTERVAL_S
    ):
        raise ConfigError(
            f"health_interval_s must be a number of seconds from {MIN_HEALTH_INTERVAL_S:g}"
            f" to {MAX_HEALTH_INTERVAL_S:g}, got {value!r}"
        )
    return float(value)


def resolve_health_interval(
    override: float | None, desired: dict[str, Any], enrolment: dict[str, Any]
) -> float:
    """The command-line override, else the desired config, else enrolment's, else the default."""
    if override is not None:
        return override
    for where, doc in (("desired config", desired), ("enrolment", enrolment)):
        try:
            interval = health_interval_from(doc)
        except ConfigError as exc:
            log.warning("ignoring health_interval_s from %s: %s", where, exc)
            continue
        if interval is not None:
            return interval
    return DEFAULT_HEALTH_INTERVAL_S


def validate_doc(doc: Any) -> dict[str, Any]:
    """Check every setting the agent understands; unknown keys are kept for newer agents."""
    if not isinstance(doc, dict):
        raise ConfigError("doc must be a JSON object")
    health_interval_from(doc)
    try:
        check_sections(doc)
    except SectionError as exc:
        raise ConfigError(str(exc)) from None
    return doc


@dataclass
class AppliedConfig:
    """The last desired configuration applied (`version`, `doc`) and the last version handled."""

    path: Path
    version: int = 0
    doc: dict[str, Any] = field(default_factory=dict)
    handled_version: int = 0

    @classmethod
    def load(cls, state_dir: Path) -> AppliedConfig:
        path = state_dir / CONFIG_FILE
        saved = read_json_file(path)
        if saved is None:
            return cls(path)
        version, doc, handled = (
            saved.get("version", 0),
            saved.get("doc", {}),
            saved.get("handled_version", 0),
        )
        if not (isinstance(version, int) and isinstance(handled, int) and isinstance(doc, dict)):
            raise StateError(f"{path} is damaged; remove it and the control plane will resend")
        return cls(path, version, doc, handled)

    def record_applied(self, version: int, doc: dict[str, Any]) -> None:
        self.version, self.doc, self.handled_version = version, doc, version
        self._save()

    def record_failed(self, version: int) -> None:
        """Remember a refused version so a retained copy is not re-evaluated on every reconnect."""
        self.handled_version = max(self.handled_version, version)
        self._save()

    def _save(self) -> None:
        doc = {"version": self.version, "doc": self.doc, "handled_version": self.handled_version}
        write_file_atomically(self.path, orjson.dumps(doc))


def report_document(version: int, status: str, error: str | None) -> dict[str, Any]:
    return {"version": version, "status": status, "error": error}


def handle_desired_config(
    raw: bytes,
    public_key: SignatureKey,
    device_id: str,
    applied: AppliedConfig,
) -> dict[str, Any] | None:
    """Verify and apply one desired-config message; the report to publish, or None to stay quiet.

    Versions only move forward, which is also the replay protection: the retained message the
    broker resends on every reconnect is recognised by its version and ignored.
    """
    if not raw:
        return None  # the retained desired config was cleared
    claimed = unverified_field(raw, "version")
    if isinstance(claimed, int) and claimed <= applied.handled_version:
        return None
    try:
        payload = verify_envelope(public_key, device_id, raw)
    except Rejected as exc:
        log.warning("refused desired config for %s: %s", device_id, exc)
        return report_document(claimed if isinstance(claimed, int) else 0, "failed", exc.reason)
    version, doc = payload.get("version"), payload.get("doc")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        return report_document(0, "failed", "version must be a positive integer")
    try:
        doc = validate_doc(doc)
        apply_sections(check_sections(doc), applied.path.parent)
    except (ConfigError, OSError) as exc:
        log.warning("refused desired config version %d for %s: %s", version, device_id, exc)
        applied.record_failed(version)
        return report_document(version, "failed", str(exc))
    applied.record_applied(version, doc)
    log.info("applied desired config version %d for %s", version, device_id)
    return report_document(version, "applied", None)
