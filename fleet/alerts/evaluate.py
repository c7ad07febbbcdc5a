"""One evaluation pass: match every rule, group by landing, open, refresh and resolve alerts.

Set-based on PostgreSQL: the matches of all rules go into a temporary table with one
INSERT ... SELECT, and opening, refreshing, resolving and linking faults are one statement each,
so the cost grows with the estate's size, not with the number of alerts.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from fleet.alerts.conditions import match_insert
from fleet.alerts.models import RULE_KINDS, AlertRule
from fleet.alerts.quiet import ActiveWindow, active_windows, silenced_pairs
from fleet.audit.service import record

log = logging.getLogger(__name__)

SYSTEM_ACTOR = "estate-alerts"
# Arbitrary constant key for the advisory lock that lets one pass run at a time.
_PASS_LOCK = 0x414C45525453
WORK_MEM = "64MB"

_CREATE_MATCH = """
CREATE TEMPORARY TABLE alert_match (
  rule_id integer, device_id text, prison_code text, location_id integer, value float8, what text
) ON COMMIT DROP
"""
_INDEX_MATCH = "CREATE INDEX ON alert_match (rule_id, device_id)"
_CREATE_SUBJECT = """
CREATE TEMPORARY TABLE alert_subject ON COMMIT DROP AS
WITH placed AS (
  -- Devices in a cell or room group under its parent (the landing); on a landing, under it.
  SELECT m.*, CASE WHEN l.kind = 'landing' THEN l.id ELSE l.parent_id END AS place_id
  FROM alert_match m LEFT JOIN location l ON l.id = m.location_id
), grouped AS (
  SELECT m.rule_id, m.place_id, count(*) AS n
  FROM placed m JOIN alert_rule r ON r.id = m.rule_id
  WHERE m.place_id IS NOT NULL
  GROUP BY m.rule_id, m.place_id, r.group_min
  HAVING count(*) >= r.group_min
), subjects AS (
  SELECT m.rule_id, 'device:' || m.device_id AS subject, m.prison_code, m.device_id,
         NULL::integer AS location_id, jsonb_build_array(m.device_id) AS devices, m.value,
         m.device_id || ' ' || m.what AS summary
  FROM placed m
  LEFT JOIN grouped g ON g.rule_id = m.rule_id AND g.place_id = m.place_id
  WHERE g.rule_id IS NULL
  UNION ALL
  SELECT m.rule_id, 'place:' || m.place_id, min(m.prison_code), NULL, m.place_id,
         jsonb_agg(m.device_id ORDER BY m.device_id), count(*)::float8,
         count(*) || ' devices on ' || l.kind || ' ' || l.path || ' ' || min(m.what)
  FROM placed m
  JOIN grouped g ON g.rule_id = m.rule_id AND g.place_id = m.place_id
  JOIN location l ON l.id = m.place_id
  GROUP BY m.rule_id, m.place_id, l.kind, l.path
)
SELECT s.*, r.kind, r.severity, (s.prison_code || '|' || r.kind) = ANY(:silenced) AS silenced
FROM subjects s JOIN alert_rule r ON r.id = s.rule_id
"""
_INDEX_SUBJECT = "CREATE INDEX ON alert_subject (rule_id, subject)"
_REFRESH = """
UPDATE alert a SET devices = s.devices, value = s.value, summary = left(s.summary, 500),
       updated_at = :now
FROM alert_subject s
WHERE a.rule_id = s.rule_id AND a.subject = s.subject AND a.status <> 'resolved'
  AND (a.devices IS DISTINCT FROM s.devices OR a.value IS DISTINCT FROM s.value)
"""
_OPEN = """
INSERT INTO alert (rule_id, subject, prison_code, device_id, location_id, kind, severity, status,
                   summary, devices, value, opened_at, updated_at)
SELECT rule_id, subject, prison_code, device_id, location_id, kind, severity, 'firing',
       left(summary, 500), devices, value, :now, :now
FROM alert_subject WHERE NOT silenced
ON CONFLICT (rule_id, subject) WHERE status <> 'resolved' DO NOTHING
RETURNING id
"""
_RESOLVE = """
UPDATE alert a SET status = 'resolved', resolved_at = :now, resolved_by = :actor,
  resolution = CASE
    WHEN NOT (a.rule_id = ANY(:live_rules)) THEN 'The rule was switched off or removed.'
    WHEN a.device_id IS NOT NULL AND EXISTS (
      SELECT 1 FROM alert_match m WHERE m.rule_id = a.rule_id AND m.device_id = a.device_id
    ) THEN 'Now part of the alert on its landing.'
    ELSE 'The condition cleared.' END
WHERE a.status <> 'resolved'
  AND NOT EXISTS (
    SELECT 1 FROM alert_subject s WHERE s.rule_id = a.rule_id AND s.subject = a.subject
  )
RETURNING a.id
"""
_LINK_FAULTS = """
UPDATE alert a SET fault_id = f.id
FROM fault f, location here
WHERE a.status <> 'resolved' AND a.location_id IS NOT NULL AND a.fault_id IS NULL
  AND here.id = a.location_id
  AND f.source = 'fleet' AND f.status = ANY(:open_faults)
  AND f.location_id IN (here.id, here.parent_id)
"""


@dataclass
class PassResult:
    ran: bool
    rules: int = 0
    matched: int = 0
    opened: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    refreshed: int = 0
    silenced: int = 0
    quiet: list[ActiveWindow] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "ran": self.ran,
            "rules": self.rules,
            "matched": self.matched,
            "opened": len(self.opened),
            "resolved": len(self.resolved),
            "refreshed": self.refreshed,
            "silenced": self.silenced,
            "quiet_windows": [a.window.id for a in self.quiet],
            "seconds": round(self.seconds, 3),
        }


def evaluate(*, session: Session, now: datetime) -> PassResult:
    """Run every enabled rule once at `now`; safe to repeat (no duplicates, same end state)."""
    from facilities.faults.workflow import OPEN_STATUSES as OPEN_FAULTS

    started = time.perf_counter()
    if session.get_bind().dialect.name != "postgresql":
        raise RuntimeError("alert evaluation needs PostgreSQL (ESTATE_DATABASE_URL)")
    if not session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _PASS_LOCK}):
        log.info("another alert evaluation pass is running; this one stands down")
        return PassResult(ran=False)
    rules = list(
        session.scalars(
            select(AlertRule)
            .where(AlertRule.enabled.is_(True), AlertRule.archived_at.is_(None))
            .order_by(AlertRule.id)
        )
    )
    quiet = active_windows(session=session, now=now)
    silenced = sorted(f"{prison}|{kind}" for prison, kind in silenced_pairs(quiet, RULE_KINDS))
    # The shared scan, its window sort and the grouping hash fit in memory at 200,000 devices
    # with this much; the default 4 MB spills them to disk and triples the pass.
    session.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
    session.execute(text("DROP TABLE IF EXISTS pg_temp.alert_match, pg_temp.alert_subject"))
    session.execute(text(_CREATE_MATCH))
    if rules:
        session.execute(match_insert(session, rules, now))
    session.execute(text(_INDEX_MATCH))
    session.execute(text(_CREATE_SUBJECT), {"silenced": silenced})
    session.execute(text(_INDEX_SUBJECT))
    result = PassResult(ran=True, rules=len(rules), quiet=quiet)
    result.matched = session.scalar(text("SELECT count(*) FROM alert_match")) or 0
    result.silenced = (
        session.scalar(
            text(
                "SELECT count(*) FROM alert_subject s WHERE silenced AND NOT EXISTS ("
                "SELECT 1 FROM alert a WHERE a.rule_id = s.rule_id AND a.subject = s.subject "
                "AND a.status <> 'resolved')"
            )
        )
        or 0
    )
    params = {"now": now}
    refreshed = session.execute(text(_REFRESH), params)
    result.refreshed = int(getattr(refreshed, "rowcount", 0) or 0)
    result.opened = list(session.scalars(text(_OPEN), params))
    result.resolved = list(
        session.scalars(
            text(_RESOLVE),
            {**params, "actor": SYSTEM_ACTOR, "live_rules": [rule.id for rule in rules]},
        )
    )
    session.execute(text(_LINK_FAULTS), {"open_faults": list(OPEN_FAULTS)})
    if result.opened or result.resolved:
        record(
            session=session,
            actor=SYSTEM_ACTOR,
            action="alerts.evaluated",
            target_type="alerts",
            target_id=now.isoformat(timespec="seconds"),
            detail={"opened": result.opened[:200], "resolved": result.resolved[:200]},
        )
    result.seconds = time.perf_counter() - started
    return result
