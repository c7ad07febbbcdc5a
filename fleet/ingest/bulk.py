"""Bulk reads and writes of device_state, per database.

PostgreSQL gets one statement each way whatever the batch size, so the server plans one
statement instead of one per row. SQLite, used for small embedded estates, gets the
portable ORM-free executemany.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import orjson
from sqlalchemy import Insert, Row, select, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from fleet.devices.models import DeviceState
from fleet.ingest.directory import LOOKUP_CHUNK

# Order matters: rows read come back in this order, and the upsert takes these columns.
STATE_FIELDS = (
    "online",
    "state",
    "boot",
    "seq",
    "last_seen",
    "last_report_ts",
    "state_ts",
    "agent_version",
    "config_version",
    "metrics",
    "health",
    "battery",
    "python_interpreter",
)
UPSERT_FIELDS = ("device_id", *STATE_FIELDS, "updated_at")

# Both statements are assembled from the constant column names above, never from input.
# Ids and rows travel as one JSON document each: orjson writes it in C, and PostgreSQL
# turns it back into typed rows (json_populate_recordset takes the types from the table).
_PG_LOCK = text(
    "SELECT device_id, "  # noqa: S608
    + ", ".join("metrics::text" if f == "metrics" else f for f in STATE_FIELDS)
    + " FROM device_state"
    " WHERE device_id IN (SELECT json_array_elements_text(CAST(:ids AS json)))"
    " ORDER BY device_id FOR UPDATE"
)
_PG_UPSERT = text(
    f"INSERT INTO device_state ({', '.join(UPSERT_FIELDS)}) "  # noqa: S608
    f"SELECT {', '.join(UPSERT_FIELDS)} "
    "FROM json_populate_recordset(NULL::device_state, CAST(:rows AS json)) "
    "ON CONFLICT (device_id) DO UPDATE SET "
    + ", ".join(f"{f} = excluded.{f}" for f in UPSERT_FIELDS[1:])
    + " WHERE device_state.seq <= excluded.seq AND device_state.boot <= excluded.boot"
)


# The common case in one statement: a device already online sends reports newer than
# anything stored and than its last state message. The WHERE re-checks all of that on the
# row's latest version under its lock, so it is safe alongside other ingest processes;
# rows it does not take go through the general path (lock, merge, upsert).
_PG_ONLINE_HEALTH = text(
    "UPDATE device_state AS d SET seq = v.seq, last_report_ts = v.last_report_ts,"
    " metrics = v.metrics, health = v.health, battery = v.battery,"
    " last_seen = greatest(d.last_seen, v.last_seen), updated_at = v.updated_at"
    " FROM json_to_recordset(CAST(:rows AS json)) AS v(device_id text, seq bigint,"
    " min_seq bigint, last_report_ts timestamptz, metrics jsonb, health text,"
    " battery double precision, last_seen timestamptz, updated_at timestamptz)"
    " WHERE d.device_id = v.device_id AND d.online AND d.seq < v.min_seq"
    " AND (d.state_ts IS NULL OR d.state_ts <= v.last_report_ts)"
    " RETURNING d.device_id"
)


def update_online_health(session: Session, rows: Sequence[dict[str, Any]]) -> set[str]:
    """PostgreSQL only: apply health to devices already online; returns the ids it updated.

    Each row: device_id, seq (the newest report), min_seq (the oldest in the batch, so no
    report of the batch is stale), last_report_ts, metrics, health, battery, last_seen,
    updated_at.
    """
    if not rows:
        return set()
    document = orjson.dumps(sorted(rows, key=lambda row: row["device_id"])).decode()
    return {device_id for (device_id,) in session.execute(_PG_ONLINE_HEALTH, {"rows": document})}


def is_postgresql(session: Session) -> bool:
    return _dialect(session) == "postgresql"


def _dialect(session: Session) -> str:
    name = session.get_bind().dialect.name
    if name not in ("postgresql", "sqlite"):
        raise RuntimeError(f"ingest supports PostgreSQL and SQLite, not {name}")
    return name


def lock_state_rows(session: Session, device_ids: Sequence[str]) -> Iterator[Row[Any]]:
    """(device_id, *STATE_FIELDS) for the existing rows, locked in id order until commit.

    On PostgreSQL `metrics` comes back as JSON text, passed through untouched when the batch
    does not replace it.
    """
    if _dialect(session) == "postgresql":
        yield from session.execute(_PG_LOCK, {"ids": orjson.dumps(list(device_ids)).decode()})
        return
    columns = [DeviceState.device_id, *(getattr(DeviceState, f) for f in STATE_FIELDS)]
    for start in range(0, len(device_ids), LOOKUP_CHUNK):
        chunk = device_ids[start : start + LOOKUP_CHUNK]
        yield from session.execute(
            select(*columns).where(DeviceState.device_id.in_(chunk)).with_for_update()
        )


def upsert_state_rows(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Write whole rows (UPSERT_FIELDS); never lowers a stored seq or boot."""
    if not rows:
        return
    if _dialect(session) == "postgresql":
        document = orjson.dumps(
            [
                row | {"metrics": orjson.Fragment(row["metrics"])}
                if isinstance(row["metrics"], str)
                else row
                for row in rows
            ]
        )
        session.execute(_PG_UPSERT, {"rows": document.decode()})
        return
    session.connection().execute(_sqlite_upsert(), list(rows))


def _sqlite_upsert() -> Insert:
    stmt = sqlite_insert(DeviceState)
    return stmt.on_conflict_do_update(
        index_elements=[DeviceState.device_id],
        set_={f: stmt.excluded[f] for f in UPSERT_FIELDS[1:]},
        where=(DeviceState.seq <= stmt.excluded.seq) & (DeviceState.boot <= stmt.excluded.boot),
    )
