"""Append to and verify the hash-chained audit trail."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from fleet.audit.models import AuditEvent
from fleet.db import utcnow

GENESIS = "0" * 64
# Arbitrary constant key for the transaction-scoped advisory lock that serialises appends.
_CHAIN_LOCK = 0x45535441544541


def _digest(prev_hash: str, ts: datetime, fields: dict[str, Any]) -> str:
    body = orjson.dumps(
        {"prev": prev_hash, "ts": ts.isoformat(timespec="microseconds"), **fields},
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(body).hexdigest()


def _fields(event: AuditEvent) -> dict[str, Any]:
    return {
        "actor": event.actor,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "prison_code": event.prison_code,
        "detail": event.detail,
    }


def record(
    *,
    session: Session,
    actor: str,
    action: str,
    target_type: str,
    target_id: str,
    prison_code: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event, chained to the previous one, inside the caller's transaction."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CHAIN_LOCK})
    last = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).first()
    prev_hash = last.hash if last else GENESIS
    ts = utcnow()
    event = AuditEvent(
        ts=ts,
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        prison_code=prison_code,
        detail=detail or {},
        prev_hash=prev_hash,
    )
    event.hash = _digest(prev_hash, ts, _fields(event))
    session.add(event)
    session.flush()
    return event


@dataclass(frozen=True)
class VerifyResult:
    checked: int
    first_bad_id: int | None
    problem: str

    @property
    def ok(self) -> bool:
        return self.first_bad_id is None


def verify(*, session: Session, batch: int = 5000) -> VerifyResult:
    """Walk the chain in order; report the first event whose content or link was altered."""
    prev_hash = GENESIS
    checked = 0
    last_id = 0
    while True:
        rows = list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.id > last_id)
                .order_by(AuditEvent.id)
                .limit(batch)
            )
        )
        if not rows:
            return VerifyResult(checked, None, "")
        for event in rows:
            if event.prev_hash != prev_hash:
                return VerifyResult(
                    checked, event.id, "its link to the previous event is broken (deleted row?)"
                )
            if _digest(prev_hash, event.ts, _fields(event)) != event.hash:
                return VerifyResult(checked, event.id, "its content no longer matches its hash")
            prev_hash = event.hash
            checked += 1
            last_id = event.id
        session.expunge_all()


def for_target(
    *, session: Session, target_type: str, target_id: str, limit: int = 50
) -> list[AuditEvent]:
    stmt = (
        select(AuditEvent)
        .where(AuditEvent.target_type == target_type, AuditEvent.target_id == target_id)
        .order_by(AuditEvent.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))
