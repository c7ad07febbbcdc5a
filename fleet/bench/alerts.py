"""`estate bench alerts`: one full rule-evaluation pass over a large estate, timed.

The estate is generated in SQL (generate_series) in a database of the bench's own, so loading
200,000 devices takes seconds, then a realistic rule set is evaluated: the first pass opens
every alert, a repeat pass is the steady state, and a pass after 1% of devices changed is what
beat runs every minute on a normal day. The baseline is a single COUNT over device_state in
the same database, so the ratio says how many table scans a pass costs.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import text

from fleet.alerts.evaluate import PassResult, evaluate
from fleet.alerts.rules import create_rule
from fleet.alerts.schemas import RuleIn
from fleet.bench.database import bench_database
from fleet.context import Context
from fleet.db import transaction, utcnow
from fleet.estate.service import seed_prisons
from fleet.migrate import upgrade
from fleet.settings import Settings

Progress = Callable[[str], None]
BAR_S = 2.0
# Reads every row of device_state, as a pass must (a bare count(*) would use the index alone).
BASELINE_SQL = "SELECT count(metrics) FROM device_state"
RULES: tuple[dict[str, object], ...] = (
    {"name": "Offline 30 minutes", "kind": "offline", "threshold": 30, "severity": "critical"},
    {"name": "Offline a day", "kind": "offline", "threshold": 1440, "severity": "warning"},
    {"name": "Battery low", "kind": "battery_low", "threshold": 15, "severity": "warning"},
    {"name": "Storage full", "kind": "storage_high", "threshold": 90, "severity": "warning"},
    {"name": "Running hot", "kind": "temperature_high", "threshold": 70, "severity": "warning"},
    {"name": "Old agent", "kind": "agent_outdated", "min_version": "1.4.0", "severity": "info"},
    {"name": "Config drift", "kind": "config_drift", "threshold": 1, "severity": "info"},
    {"name": "Flapping", "kind": "flapping", "threshold": 6, "severity": "warning"},
)


@dataclass
class Timed:
    name: str
    seconds: list[float]
    result: PassResult | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


@dataclass
class AlertFigures:
    devices: int
    prisons: int
    events: int
    baseline: Timed
    passes: list[Timed] = field(default_factory=list)

    def lines(self) -> list[str]:
        base = self.baseline.median
        out = [
            f"alert evaluation: {self.devices:,} devices in {self.prisons} prisons, "
            f"{self.events:,} device events, {len(RULES)} rules",
            f"baseline: one COUNT reading device_state  {base * 1000:8.1f} ms",
        ]
        for timed in self.passes:
            r = timed.result
            detail = (
                f"matched {r.matched:,}, opened {len(r.opened):,}, resolved {len(r.resolved):,}"
                if r
                else ""
            )
            verdict = "meets" if timed.median < BAR_S else "MISSES"
            out.append(
                f"{timed.name:<34} {timed.median * 1000:8.1f} ms  "
                f"{timed.median / base:6.1f}x baseline  {verdict} the {BAR_S:.0f} s bar  {detail}"
            )
        return out


_PLACES = """
WITH p AS (SELECT code FROM prison ORDER BY code LIMIT :prisons),
wings AS (
  INSERT INTO location (prison_code, path, kind, name, capacity, created_at)
  SELECT p.code, p.code || '-' || w, 'wing', 'Wing ' || w, 0, :now
  FROM p, generate_series(1, :wings) w RETURNING id, prison_code, path
), landings AS (
  INSERT INTO location (prison_code, parent_id, path, kind, name, capacity, created_at)
  SELECT wings.prison_code, wings.id, wings.path || '-' || l, 'landing', 'Landing ' || l, 0, :now
  FROM wings, generate_series(1, :landings) l RETURNING id, prison_code, path
)
INSERT INTO location (prison_code, parent_id, path, kind, name, capacity, created_at)
SELECT landings.prison_code, landings.id, landings.path || '-' || lpad(c::text, 3, '0'),
       'cell', 'Cell ' || c, 2, :now
FROM landings, generate_series(1, :cells) c
"""
_DEVICES = """
INSERT INTO device (id, serial, kind, prison_code, location_id, lifecycle, hostname, created_at)
SELECT l.path || '-' || k.kind, 'SN-' || l.path || '-' || k.kind, k.kind, l.prison_code, l.id,
       'enrolled', '', :now
FROM (SELECT * FROM location WHERE kind = 'cell' ORDER BY id) l
CROSS JOIN (VALUES ('in_cell_phone'), ('tablet')) AS k(kind)
ORDER BY l.id, k.kind
LIMIT :devices
"""
# Mostly healthy, a few in each kind of trouble, and one landing in ~200 down together.
_STATES = """
INSERT INTO device_state (device_id, online, state, boot, seq, last_seen, last_report_ts,
  agent_version, config_version, metrics, health, battery, updated_at)
SELECT d.id, NOT down, CASE WHEN down THEN 'lost' ELSE 'online' END, 1, 100,
       :now - CASE WHEN down THEN interval '1 minute' * (random() * 3000)
                   ELSE interval '1 second' * (random() * 60) END,
       :now, CASE WHEN random() < 0.02 THEN '1.3.9' ELSE '1.4.2' END,
       CASE WHEN random() < 0.01 THEN 3 ELSE 4 END,
       jsonb_build_object('battery', battery,
                          'charging', CASE WHEN random() < 0.3 THEN 1 ELSE 0 END,
                          'storage', round((random() * 93)::numeric, 1),
                          'temperature', round((25 + random() * 47)::numeric, 1), 'cpu', 5),
       'ok', battery, :now
FROM (
  SELECT d.id, (random() < 0.02 OR l.parent_id % 200 = 0) AS down,
         round((CASE WHEN random() < 0.04 THEN random() * 15 ELSE 15 + random() * 85 END
                )::numeric, 1)::float8 AS battery
  FROM device d JOIN location l ON l.id = d.location_id
) d
"""
# Every device has a desired configuration; 1% have not applied the newest, a few failed it.
_DESIRED = """
INSERT INTO desired_config (device_id, version, doc, updated_by, updated_at, reported_version,
  reported_status, reported_error, reported_at)
SELECT id, 4, '{}'::jsonb, 'bench', :now, CASE WHEN r < 0.01 THEN 3 ELSE 4 END,
       CASE WHEN r < 0.002 THEN 'failed' ELSE 'applied' END, '', :now
FROM (SELECT id, random() AS r FROM device) d
"""
_EVENTS = """
INSERT INTO device_event (device_id, ts, kind, detail)
SELECT d.id, :now - interval '1 hour' * random() * 24, 'online', '{}'::jsonb FROM device d
UNION ALL
SELECT d.id, :now - interval '1 minute' * (n * 5),
       CASE WHEN n % 2 = 0 THEN 'online' ELSE 'lost' END, '{}'::jsonb
FROM (SELECT id FROM device ORDER BY id LIMIT :flappers) d, generate_series(1, 10) n
"""
_CHURN = """
UPDATE device_state SET online = NOT online, last_seen = :now,
  state = CASE WHEN online THEN 'lost' ELSE 'online' END
WHERE device_id IN (SELECT device_id FROM device_state TABLESAMPLE BERNOULLI (1) REPEATABLE (7))
"""


def _load(ctx: Context, *, devices: int, prisons: int, now: datetime, progress: Progress) -> int:
    cells = max(1, -(-devices // (2 * prisons * 4 * 4)))
    with transaction(ctx.sessions) as session:
        session.execute(text("SELECT setseed(0.42)"))
        args = {"now": now, "prisons": prisons, "wings": 4, "landings": 4, "cells": cells}
        session.execute(text(_PLACES), args)
        progress(f"locations: {prisons} prisons x 4 wings x 4 landings x {cells} cells")
        session.execute(text(_DEVICES), {"now": now, "devices": devices})
        session.execute(text(_STATES), {"now": now})
        session.execute(text(_DESIRED), {"now": now})
        progress(f"{devices:,} devices with their latest state and desired configuration")
        session.execute(text(_EVENTS), {"now": now, "flappers": max(1, devices // 400)})
        events = int(session.scalar(text("SELECT count(*) FROM device_event")) or 0)
        progress(f"{events:,} device events")
        for spec in RULES:
            create_rule(
                session=session,
                actor="bench",
                data=RuleIn.model_validate(spec),
                caseload=None,
                now=now,
            )
    with ctx.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    return events


def _timed_pass(ctx: Context, now: datetime) -> tuple[float, PassResult]:
    with transaction(ctx.sessions) as session:
        started = time.perf_counter()
        result = evaluate(session=session, now=now)
    return time.perf_counter() - started, result


def _baseline(ctx: Context, rounds: int) -> Timed:
    seconds = []
    with ctx.engine.connect() as conn:
        for _ in range(rounds + 1):
            started = time.perf_counter()
            conn.execute(text(BASELINE_SQL)).scalar()
            seconds.append(time.perf_counter() - started)
    return Timed("baseline", seconds[1:])  # the first warms the cache


def run_alerts_bench(
    settings: Settings, *, devices: int, prisons: int, rounds: int, progress: Progress
) -> AlertFigures:
    """Load the estate into a fresh database, then time evaluation passes against a COUNT."""
    with bench_database(settings, purpose="alerts", progress=progress) as bench_settings:
        ctx = Context(bench_settings)
        try:
            upgrade(ctx.engine)
            with transaction(ctx.sessions) as session:
                seed_prisons(session=session)
            now = utcnow()
            events = _load(ctx, devices=devices, prisons=prisons, now=now, progress=progress)
            figures = AlertFigures(devices, prisons, events, _baseline(ctx, rounds))
            progress("first pass (opens every alert)")
            seconds, result = _timed_pass(ctx, now)
            figures.passes.append(Timed("first pass, opening alerts", [seconds], result))
            steady = Timed("repeat pass, nothing changed", [])
            for round_no in range(rounds):
                seconds, steady.result = _timed_pass(ctx, now + timedelta(seconds=round_no + 1))
                steady.seconds.append(seconds)
            figures.passes.append(steady)
            progress("1% of devices change state")
            with transaction(ctx.sessions) as session:
                session.execute(text(_CHURN), {"now": now + timedelta(minutes=1)})
            seconds, result = _timed_pass(ctx, now + timedelta(minutes=1))
            figures.passes.append(Timed("pass after 1% of devices changed", [seconds], result))
            return figures
        finally:
            ctx.close()
