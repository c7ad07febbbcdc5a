"""Latest device state: merge a batch of reports into device_state with one bulk upsert.

Rules (so redelivery and out-of-order arrival never regress a row):
- health: the highest `seq` above the stored one sets metrics, health and battery; reports at
  or below the stored seq are stale (history only). A health report newer than the last state
  message marks the device online.
- state: a message applies when its `boot` is newer, or the boot is the same and either its
  `ts` is not older or it ends the current session (lost/offline after online). A will from
  an older boot than the stored one is ignored. One that applies sets config_version, and the
  agent version and Python interpreter when it carries them.
On PostgreSQL the common case (health from a device already online) is one UPDATE whose
WHERE holds these rules. Everything else is read FOR UPDATE (in id order, so concurrent
ingest processes queue rather than deadlock), merged here, and written with one upsert that
still refuses to lower `seq` or `boot` as a last line of defence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from fleet.devices.models import DeviceEvent
from fleet.ingest.bulk import (
    STATE_FIELDS,
    is_postgresql,
    lock_state_rows,
    update_online_health,
    upsert_state_rows,
)
from fleet.ingest.classify import AcceptedHealth, AcceptedState
from fleet.ingest.health import assess, battery_of

ENDS_SESSION = ("lost", "offline")
TRANSITION_KINDS = ("online", "offline", "lost")


@dataclass(slots=True)
class Snapshot:
    """A device_state row as the batch sees it."""

    device_id: str
    online: bool = False
    state: str = "unknown"
    boot: int = 0
    seq: int = -1
    last_seen: datetime | None = None
    last_report_ts: datetime | None = None
    state_ts: datetime | None = None
    agent_version: str = ""
    config_version: int = 0
    # A dict, or on PostgreSQL the stored JSON text when this batch leaves it unchanged.
    metrics: dict[str, Any] | str = field(default_factory=dict)
    health: str = "unknown"
    battery: float | None = None
    python_interpreter: str | None = None


@dataclass(slots=True)
class LatestOutcome:
    stale_health: int = 0
    stale_state: int = 0
    rows_written: int = 0
    events: dict[str, int] = field(default_factory=dict)


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _later(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


def state_applies(current: Snapshot, report_state: str, boot: int, ts: datetime) -> bool:
    """Whether a state message supersedes what is stored (see the module rules)."""
    if current.state_ts is None or boot > current.boot:
        return True
    if boot < current.boot:
        return False
    if ts >= current.state_ts:
        return True
    return report_state in ENDS_SESSION and current.state == "online"


@dataclass(frozen=True, slots=True)
class Transition:
    kind: str  # online, offline or lost
    ts: datetime
    previous: str
    boot: int


@dataclass(slots=True)
class Merged:
    row: Snapshot
    stale_health: int = 0
    stale_state: int = 0
    transitions: list[Transition] = field(default_factory=list)

    def record_move(self, before_state: str, before_online: bool, ts: datetime) -> None:
        row = self.row
        if row.state in TRANSITION_KINDS and (
            row.state != before_state or row.online != before_online
        ):
            self.transitions.append(Transition(row.state, ts, before_state, row.boot))


def merge(
    current: Snapshot,
    states: Sequence[AcceptedState],
    health: Sequence[AcceptedHealth],
) -> Merged:
    """One device's row after this batch: state messages in arrival order, then health."""
    merged = Merged(replace(current))
    row = merged.row
    for change in states:
        state = change.report
        ts = _dt(state.ts)
        if not state_applies(row, state.state, state.boot, ts):
            merged.stale_state += 1
            continue
        before_state, before_online = row.state, row.online
        row.state = state.state
        row.online = state.state == "online"
        row.boot = state.boot
        row.state_ts = ts
        row.config_version = state.config_version
        if state.agent:
            row.agent_version = state.agent
        if state.python:
            row.python_interpreter = state.python
        if row.online:
            row.last_seen = _later(row.last_seen, _dt(change.received_at))
        merged.record_move(before_state, before_online, ts)
    newest: AcceptedHealth | None = None
    for item in health:
        if item.report.seq <= current.seq:
            merged.stale_health += 1
        elif newest is None or item.report.seq > newest.report.seq:
            newest = item
    if newest is not None:
        report = newest.report
        report_ts = _dt(report.ts)
        row.seq = report.seq
        row.last_report_ts = report_ts
        row.metrics = dict(report.metrics)
        row.health = assess(report.metrics)
        row.battery = battery_of(report.metrics)
        row.last_seen = _later(row.last_seen, _dt(newest.received_at))
        if row.state_ts is None or report_ts >= row.state_ts:
            before_state, before_online = row.state, row.online
            row.online = True
            row.state = "online"
            merged.record_move(before_state, before_online, report_ts)
    return merged


def _lock_current(session: Session, device_ids: list[str]) -> dict[str, Snapshot]:
    return {row[0]: Snapshot(*row) for row in lock_state_rows(session, device_ids)}


def write_latest_state(
    *,
    session: Session,
    health: Sequence[AcceptedHealth],
    states: Sequence[AcceptedState],
    now: datetime,
) -> LatestOutcome:
    """Merge the batch into device_state and record online/offline/lost transitions."""
    by_device_health: dict[str, list[AcceptedHealth]] = {}
    for h in health:
        by_device_health.setdefault(h.report.device_id, []).append(h)
    by_device_state: dict[str, list[AcceptedState]] = {}
    for s in states:
        by_device_state.setdefault(s.report.device_id, []).append(s)
    outcome = LatestOutcome()
    done: set[str] = set()
    if is_postgresql(session):
        done = _online_health_fast_path(session, by_device_health, by_device_state, now)
        outcome.rows_written += len(done)
    device_ids = sorted((by_device_health.keys() | by_device_state.keys()) - done)
    if not device_ids:
        return outcome
    current = _lock_current(session, device_ids)
    rows: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for device_id in device_ids:
        before = current.get(device_id) or Snapshot(device_id)
        merged = merge(
            before, by_device_state.get(device_id, ()), by_device_health.get(device_id, ())
        )
        outcome.stale_health += merged.stale_health
        outcome.stale_state += merged.stale_state
        if device_id in current and merged.row == before:
            continue
        rows.append({"device_id": device_id, "updated_at": now, **_fields(merged.row)})
        for moved in merged.transitions:
            events.append(
                {
                    "device_id": device_id,
                    "ts": moved.ts,
                    "kind": moved.kind,
                    "detail": {"boot": moved.boot, "previous": moved.previous},
                }
            )
            outcome.events[moved.kind] = outcome.events.get(moved.kind, 0) + 1
    upsert_state_rows(session, rows)
    if events:
        session.connection().execute(insert(DeviceEvent), events)
    outcome.rows_written += len(rows)
    return outcome


def _online_health_fast_path(
    session: Session,
    health: dict[str, list[AcceptedHealth]],
    states: dict[str, list[AcceptedState]],
    now: datetime,
) -> set[str]:
    """Health-only devices that are online: one UPDATE, no read (see update_online_health)."""
    rows = []
    for device_id, reports in health.items():
        if device_id in states:
            continue
        newest = max(reports, key=lambda item: item.report.seq)
        metrics = newest.report.metrics
        rows.append(
            {
                "device_id": device_id,
                "seq": newest.report.seq,
                "min_seq": min(item.report.seq for item in reports),
                "last_report_ts": _dt(newest.report.ts),
                "metrics": metrics,
                "health": assess(metrics),
                "battery": battery_of(metrics),
                "last_seen": _dt(newest.received_at),
                "updated_at": now,
            }
        )
    return update_online_health(session, rows)


def _fields(row: Snapshot) -> dict[str, Any]:
    return {name: getattr(row, name) for name in STATE_FIELDS}
