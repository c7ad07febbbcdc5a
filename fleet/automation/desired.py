"""Desired configuration: set a new signed version, record what devices report, measure drift.

Drift is the desired version against the version the device says it has applied (the
`config_version` of its state, kept by ingest). A device whose last report for the desired
version is `failed` is drifted with the device's error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import ColumnElement, Select, and_, case, func, select
from sqlalchemy.orm import Session

from agents.config import ConfigError, validate_doc
from agents.protocol import sign_envelope
from fleet.audit.service import record
from fleet.automation.models import REPORT_STATUSES, DesiredConfig
from fleet.devices.models import Device, DeviceState

# Versions only move forward, which is what protects devices from a replayed configuration;
# the signature's expiry is therefore long, so a device offline for months still applies it.
CONFIG_TTL_S = 10 * 365 * 86_400
MAX_DOC_BYTES = 64 * 1024
DRIFT_STATES = ("in_sync", "pending", "failed")
SECRET_MASK = "********"  # noqa: S105 - the mask shown instead of a secret


class DesiredRefused(Exception):
    """The configuration cannot be set; `status` is the HTTP answer and `field` what to fix."""

    def __init__(self, status: int, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def check_doc(doc: Any) -> dict[str, Any]:
    """The document as devices will check it, or DesiredRefused(422) saying what to change."""
    if not isinstance(doc, dict):
        raise DesiredRefused(422, "must be a JSON object of settings", field="doc")
    if len(orjson.dumps(doc)) > MAX_DOC_BYTES:
        raise DesiredRefused(422, f"must be at most {MAX_DOC_BYTES} bytes as JSON", field="doc")
    try:
        return validate_doc(doc)
    except ConfigError as exc:
        key = str(exc).split(" ", 1)[0].split(":", 1)[0].split("[", 1)[0].split(".", 1)[0]
        raise DesiredRefused(422, str(exc), field=f"doc.{key}" if key in doc else "doc") from None


def redacted(doc: dict[str, Any]) -> dict[str, Any]:
    """The document as people may read it: Wi-Fi passphrases masked."""
    wifi = doc.get("wifi")
    if not isinstance(wifi, list):
        return doc
    masked = [{**n, "psk": SECRET_MASK} if isinstance(n, dict) and "psk" in n else n for n in wifi]
    return {**doc, "wifi": masked}


def set_desired(
    *, session: Session, actor: str, device: Device, doc: Any, now: datetime
) -> tuple[DesiredConfig, bool]:
    """Store `doc` as the device's next version (audited); False when it is already desired."""
    doc = check_doc(doc)
    if device.lifecycle in ("retired", "revoked"):
        raise DesiredRefused(409, f"device {device.id} is {device.lifecycle}; it takes no config")
    row = session.get(DesiredConfig, device.id, with_for_update=True)
    if row is not None and row.doc == doc:
        return row, False
    state = session.get(DeviceState, device.id)
    # Above anything the device has already handled, so it never ignores the new version.
    floor = max(row.version if row else 0, state.config_version if state else 0, 0)
    if row is None:
        row = DesiredConfig(device_id=device.id, version=floor + 1, doc=doc)
        session.add(row)
    row.version, row.doc, row.updated_by, row.updated_at = floor + 1, doc, actor, now
    row.published_at = None
    session.flush()
    record(
        session=session,
        actor=actor,
        action="device.desired_config.set",
        target_type="device",
        target_id=device.id,
        prison_code=device.prison_code,
        detail={"version": row.version, "keys": sorted(doc)},
    )
    return row, True


def signed_config(row: DesiredConfig, key: Ed25519PrivateKey) -> bytes:
    """The envelope for the device's retained config topic."""
    return sign_envelope(
        key,
        row.device_id,
        {"version": row.version, "doc": row.doc},
        ttl_s=CONFIG_TTL_S,
        envelope_id=f"config-{row.version}",
    )


def record_report(
    *, session: Session, device_id: str, report: Any, now: datetime
) -> DesiredConfig | None:
    """Keep a device's config/reported message on its desired row; None if it says nothing new."""
    if not isinstance(report, dict):
        return None
    version, status, error = report.get("version"), report.get("status"), report.get("error")
    if isinstance(version, bool) or not isinstance(version, int) or status not in REPORT_STATUSES:
        return None
    row = session.get(DesiredConfig, device_id)
    if row is None or version < row.reported_version:
        return None
    if (version, status) == (row.reported_version, row.reported_status) and row.reported_at:
        return None
    row.reported_version, row.reported_status = version, str(status)
    row.reported_error = str(error)[:2000] if error else ""
    row.reported_at = now
    session.flush()
    return row


@dataclass(frozen=True)
class Drift:
    device_id: str
    desired_version: int
    applied_version: int
    state: str  # in_sync | pending | failed
    error: str


def applied_version(row: DesiredConfig, state_version: int) -> int:
    """The newest version the device says it applied: in its state or its config report."""
    reported = row.reported_version if row.reported_status == "applied" else 0
    return max(state_version, reported)


def _applied_sql() -> ColumnElement[int]:
    state_version = func.coalesce(DeviceState.config_version, 0)
    reported = case(
        (DesiredConfig.reported_status == "applied", DesiredConfig.reported_version), else_=0
    )
    return case((state_version >= reported, state_version), else_=reported)


def drift_state(row: DesiredConfig, applied: int) -> str:
    if applied >= row.version:
        return "in_sync"
    if row.reported_version == row.version and row.reported_status == "failed":
        return "failed"
    return "pending"


def device_drift(*, session: Session, device_id: str) -> Drift | None:
    row = session.get(DesiredConfig, device_id)
    if row is None:
        return None
    state = session.get(DeviceState, device_id)
    applied = applied_version(row, state.config_version if state else 0)
    error = row.reported_error if row.reported_version == row.version else ""
    return Drift(device_id, row.version, applied, drift_state(row, applied), error)


def drifted_device_ids() -> Select[str]:
    """Devices whose applied version is behind their desired version (for list filters)."""
    applied = _applied_sql()
    return (
        select(DesiredConfig.device_id)
        .outerjoin(DeviceState, DeviceState.device_id == DesiredConfig.device_id)
        .where(applied < DesiredConfig.version)
    )


def drift_summary(*, session: Session, scope: Sequence[str] | None) -> dict[str, dict[str, int]]:
    """Counts of in_sync / pending / failed devices, per prison and for the whole scope."""
    applied = _applied_sql()
    state = case(
        (applied >= DesiredConfig.version, "in_sync"),
        (
            and_(
                DesiredConfig.reported_version == DesiredConfig.version,
                DesiredConfig.reported_status == "failed",
            ),
            "failed",
        ),
        else_="pending",
    )
    query = (
        select(Device.prison_code, state, func.count())
        .join(Device, Device.id == DesiredConfig.device_id)
        .outerjoin(DeviceState, DeviceState.device_id == DesiredConfig.device_id)
        .group_by(Device.prison_code, state)
    )
    if scope is not None:
        query = query.where(Device.prison_code.in_(scope))
    totals: dict[str, dict[str, int]] = {"all": dict.fromkeys(DRIFT_STATES, 0)}
    for prison, label, count in session.execute(query):
        totals.setdefault(prison, dict.fromkeys(DRIFT_STATES, 0))[label] += count
        totals["all"][label] += count
    return totals
