"""One-time enrolment tokens, their redemption, and revoking a device's identity."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from fleet.audit.service import record
from fleet.broker.credentials import CredentialIssuer
from fleet.db import utcnow
from fleet.devices.models import Credential, Device, DeviceEvent, DeviceState, EnrolmentToken
from fleet.estate.models import Location, Prison
from fleet.settings import Settings
from fleet.signing import signing_public_key

TOKEN_PREFIX = "enr_"  # noqa: S105 - a public prefix, not a secret
KIND_CODES = {"in_cell_phone": "ICP", "tablet": "TAB", "laptop": "LAP", "kiosk": "KSK"}
DEFAULT_HEALTH_INTERVAL_S = 30


class EnrolmentError(Exception):
    """Refused enrolment; `status` is the HTTP status the API answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_device_id(*, session: Session, prison_code: str, kind: str) -> str:
    for _ in range(20):
        candidate = f"{prison_code}-{KIND_CODES[kind]}-{secrets.token_hex(3).upper()}"
        if session.get(Device, candidate) is None:
            return candidate
    raise RuntimeError("could not find a free device id after 20 attempts")


@dataclass(frozen=True)
class CreatedTokens:
    tokens: list[str]
    expires_at: datetime
    location: Location | None


def create_tokens(
    *,
    session: Session,
    settings: Settings,
    actor: str,
    prison_code: str,
    kind: str,
    location_path: str | None = None,
    device_id: str | None = None,
    ttl_s: int | None = None,
    count: int = 1,
) -> CreatedTokens:
    """Create `count` one-time tokens; only their hashes are stored."""
    prison_code = prison_code.upper()
    if session.get(Prison, prison_code) is None:
        raise EnrolmentError(422, f"unknown prison {prison_code!r}; see /api/v1/prisons")
    if kind not in KIND_CODES:
        raise EnrolmentError(422, f"unknown kind {kind!r}; one of {', '.join(KIND_CODES)}")
    location = None
    if location_path:
        location = session.scalars(
            select(Location).where(Location.path == location_path.upper())
        ).first()
        if location is None or location.prison_code != prison_code:
            raise EnrolmentError(422, f"no location {location_path!r} in {prison_code}")
    if device_id:
        device = session.get(Device, device_id)
        if device is None or device.prison_code != prison_code:
            raise EnrolmentError(422, f"no registered device {device_id!r} in {prison_code}")
        if device.lifecycle != "registered" or count != 1:
            raise EnrolmentError(409, f"device {device_id} is {device.lifecycle}; cannot enrol")
    expires_at = utcnow() + timedelta(seconds=ttl_s or settings.enrolment_token_ttl_s)
    tokens = []
    for _ in range(count):
        token = TOKEN_PREFIX + secrets.token_urlsafe(24)
        session.add(
            EnrolmentToken(
                token_hash=_hash(token),
                prison_code=prison_code,
                kind=kind,
                location_id=location.id if location else None,
                device_id=device_id,
                created_by=actor,
                expires_at=expires_at,
            )
        )
        tokens.append(token)
    session.flush()
    record(
        session=session,
        actor=actor,
        action="enrolment.tokens_created",
        target_type="prison",
        target_id=prison_code,
        prison_code=prison_code,
        detail={"kind": kind, "count": count, "location": location_path, "device_id": device_id},
    )
    return CreatedTokens(tokens, expires_at, location)


def device_broker_url(settings: Settings) -> str:
    """The broker URL devices use, with any control-plane credentials stripped."""
    parts = urlsplit(settings.device_mqtt_url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, "", "", ""))


@dataclass(frozen=True)
class Redeemed:
    device: Device
    location: Location | None
    username: str
    password: str
    signing_public_key: str
    config: dict[str, int | str | float | bool]


def redeem(
    *,
    session: Session,
    settings: Settings,
    issuer: CredentialIssuer,
    token: str,
    serial: str,
    hostname: str = "",
    agent_version: str = "",
) -> Redeemed:
    """Turn a one-time token into a device identity with broker credentials."""
    row = session.scalars(
        select(EnrolmentToken).where(EnrolmentToken.token_hash == _hash(token))
    ).first()
    if row is None:
        raise EnrolmentError(404, "enrolment token not recognised; check it was copied in full")
    now = utcnow()
    if row.used_at is not None:
        raise EnrolmentError(409, "enrolment token already used; ask IT support for a new one")
    if row.expires_at < now:
        raise EnrolmentError(410, "enrolment token expired; ask IT support for a new one")
    # Claim the token atomically so two devices racing with one token cannot both enrol.
    claimed = session.execute(
        update(EnrolmentToken)
        .where(EnrolmentToken.id == row.id, EnrolmentToken.used_at.is_(None))
        .values(used_at=now)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise EnrolmentError(409, "enrolment token already used; ask IT support for a new one")

    existing = session.scalars(select(Device).where(Device.serial == serial)).first()
    if row.device_id:
        device = session.get(Device, row.device_id)
        assert device is not None
        if existing is not None and existing.id != device.id:
            raise EnrolmentError(409, f"serial {serial} belongs to device {existing.id}")
        device.serial = serial
    elif existing is not None:
        if existing.lifecycle in ("enrolled", "registered"):
            raise EnrolmentError(
                409,
                f"serial {serial} is already device {existing.id} ({existing.lifecycle}); "
                "retire that device first to re-enrol the hardware",
            )
        # Retired or revoked hardware comes back under a new identity; free the serial.
        existing.serial = f"{existing.serial}~{existing.id}"
        session.flush()
        device = None
    else:
        device = None
    if device is None:
        device = Device(
            id=new_device_id(session=session, prison_code=row.prison_code, kind=row.kind),
            serial=serial,
            kind=row.kind,
            prison_code=row.prison_code,
            location_id=row.location_id,
        )
        session.add(device)
    device.lifecycle = "enrolled"
    device.enrolled_at = now
    device.hostname = hostname[:200]
    session.flush()
    row.device_id = device.id
    if session.get(DeviceState, device.id) is None:
        session.add(DeviceState(device_id=device.id, agent_version=agent_version[:32]))
    password = issuer.issue(device.id)
    session.add(Credential(device_id=device.id, username=device.id))
    session.add(DeviceEvent(device_id=device.id, kind="enrolled", detail={"serial": serial}))
    record(
        session=session,
        actor=f"device:{device.id}",
        action="device.enrolled",
        target_type="device",
        target_id=device.id,
        prison_code=device.prison_code,
        detail={"serial": serial, "hostname": hostname, "token_created_by": row.created_by},
    )
    location = session.get(Location, device.location_id) if device.location_id else None
    return Redeemed(
        device=device,
        location=location,
        username=device.id,
        password=password,
        signing_public_key=signing_public_key(settings),
        config={"health_interval_s": DEFAULT_HEALTH_INTERVAL_S},
    )


def revoke_device(
    *, session: Session, issuer: CredentialIssuer, device_id: str, actor: str, reason: str
) -> Device:
    """Disable the device's broker identity (it is disconnected at once) and mark it revoked."""
    device = session.get(Device, device_id)
    if device is None:
        raise EnrolmentError(404, f"device {device_id} not found")
    if device.lifecycle == "revoked":
        return device
    issuer.revoke(device.id)
    now = utcnow()
    device.lifecycle = "revoked"
    for cred in session.scalars(
        select(Credential).where(Credential.device_id == device.id, Credential.revoked_at.is_(None))
    ):
        cred.revoked_at = now
    state = session.get(DeviceState, device.id)
    if state is not None:
        state.online = False
        state.state = "offline"
    session.add(DeviceEvent(device_id=device.id, kind="revoked", detail={"reason": reason}))
    record(
        session=session,
        actor=actor,
        action="device.revoked",
        target_type="device",
        target_id=device.id,
        prison_code=device.prison_code,
        detail={"reason": reason},
    )
    return device
