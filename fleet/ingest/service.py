"""Ingest writes to the SQL store: a batch's state, samples and dead letters; the sweeper.

Every function takes the session as `session=` and never commits; the caller owns the
transaction, so a batch is written entirely or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Insert, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from fleet.devices.models import DeviceEvent, DeviceState, HealthSample
from fleet.ingest.classify import AcceptedHealth, Classified, Refused
from fleet.ingest.latest import write_latest_state
from fleet.ingest.models import DeadLetter

DEAD_LETTER_PAYLOAD_BYTES = 4096


@dataclass(slots=True)
class BatchOutcome:
    health_written: int = 0
    states_written: int = 0
    stale_health: int = 0
    stale_state: int = 0
    dead_letters: int = 0
    events: dict[str, int] = field(default_factory=dict)


def write_batch(
    *,
    session: Session,
    classified: Classified,
    keep_samples: bool,
    dead_letter_max: int,
    now: datetime,
) -> BatchOutcome:
    """Latest state, health samples (when there is no TSDB) and dead letters for one batch."""
    latest = write_latest_state(
        session=session, health=classified.health, states=classified.states, now=now
    )
    if keep_samples and classified.health:
        write_samples(session=session, health=classified.health)
    dead = record_dead_letters(
        session=session, refused=classified.refused, max_rows=dead_letter_max, now=now
    )
    return BatchOutcome(
        health_written=len(classified.health),
        states_written=len(classified.states) - latest.stale_state,
        stale_health=latest.stale_health,
        stale_state=latest.stale_state,
        dead_letters=dead,
        events=latest.events,
    )


def _insert_ignoring_duplicates(session: Session, table: type[HealthSample]) -> Insert:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return pg_insert(table).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite_insert(table).on_conflict_do_nothing()
    raise RuntimeError(f"ingest supports PostgreSQL and SQLite, not {dialect}")


def write_samples(*, session: Session, health: Sequence[AcceptedHealth]) -> None:
    """Keep every report in health_sample; (device_id, seq) makes redelivery a no-op."""
    rows = [
        {
            "device_id": item.report.device_id,
            "seq": item.report.seq,
            "ts": datetime.fromtimestamp(item.report.ts, UTC),
            "metrics": item.report.metrics,
        }
        for item in health
    ]
    session.connection().execute(_insert_ignoring_duplicates(session, HealthSample), rows)


def record_dead_letters(
    *, session: Session, refused: Sequence[Refused], max_rows: int, now: datetime
) -> int:
    """Store refused messages (payload truncated), then trim the table to `max_rows`."""
    if not refused:
        return 0
    session.connection().execute(
        insert(DeadLetter),
        [
            {
                "received_at": now,
                "topic": item.message.topic[:300],
                "reason": item.reason[:50],
                "detail": item.detail[:500],
                "payload": item.message.payload[:DEAD_LETTER_PAYLOAD_BYTES],
            }
            for item in refused
        ],
    )
    trim_dead_letters(session=session, max_rows=max_rows)
    return len(refused)


def trim_dead_letters(*, session: Session, max_rows: int) -> int:
    """Delete the oldest dead letters beyond the newest `max_rows`; returns how many went."""
    boundary = session.scalar(
        select(DeadLetter.id).order_by(DeadLetter.id.desc()).offset(max_rows).limit(1)
    )
    if boundary is None:
        return 0
    result = session.execute(delete(DeadLetter).where(DeadLetter.id <= boundary))
    return int(getattr(result, "rowcount", 0) or 0)


def mark_silent_devices(*, session: Session, now: datetime, offline_after_s: int) -> int:
    """Online devices unheard of for `offline_after_s` become lost, with a `silent` event.

    The UPDATE re-checks `online` under the row lock, so sweepers in several ingest processes
    never mark a device twice. It also stamps `state_ts`, so only reports made after the
    sweep (not a redelivered, older birth message) bring the device back online.
    """
    cutoff = now - timedelta(seconds=offline_after_s)
    stmt = (
        update(DeviceState)
        .where(DeviceState.online.is_(True), DeviceState.last_seen < cutoff)
        .values(online=False, state="lost", state_ts=now, updated_at=now)
        .returning(DeviceState.device_id, DeviceState.last_seen)
        .execution_options(synchronize_session=False)
    )
    marked = session.execute(stmt).all()
    if marked:
        session.connection().execute(
            insert(DeviceEvent),
            [
                {
                    "device_id": device_id,
                    "ts": now,
                    "kind": "silent",
                    "detail": {
                        "last_seen": last_seen.isoformat() if last_seen else None,
                        "offline_after_s": offline_after_s,
                    },
                }
                for device_id, last_seen in marked
            ],
        )
    return len(marked)
