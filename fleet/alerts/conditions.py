"""What each rule matches now: one shared scan of device_state, plus drift and flapping."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Float,
    Insert,
    Integer,
    MetaData,
    Select,
    String,
    Subquery,
    Table,
    and_,
    case,
    cast,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.orm import Session, aliased

from fleet.alerts.kinds import KINDS, VERSION_PATTERN, version_tuple
from fleet.alerts.models import AlertRule
from fleet.automation.models import DesiredConfig, DeviceTag
from fleet.devices.models import Device, DeviceEvent, DeviceState
from fleet.estate.models import Location

TRANSITIONS = ("online", "offline", "lost")
FLAP_WINDOW = timedelta(hours=1)

# Filled per evaluation pass; created ON COMMIT DROP, so it never outlives the transaction.
MATCH = Table(
    "alert_match",
    MetaData(),
    Column("rule_id", Integer),
    Column("device_id", String),
    Column("prison_code", String),
    Column("location_id", Integer),
    Column("value", Float),
    Column("what", String),
)
MATCH_COLUMNS = ["rule_id", "device_id", "prison_code", "location_id", "value", "what"]


def _metric(name: str) -> ColumnElement[float | None]:
    """A numeric metric from the JSON document; NULL when missing or not a number."""
    doc = DeviceState.metrics
    return case(
        (func.jsonb_typeof(doc[name]) == "number", doc[name].as_float()),
        else_=null(),
    )


def outdated_versions(session: Session, min_version: str) -> list[str]:
    """Agent versions reported in the estate that are older than `min_version`.

    The estate reports a handful of distinct versions, so they are compared here, as numbers
    (1.10.0 is newer than 1.9.9), and the rule becomes a plain IN over the shared scan.
    """
    wanted = version_tuple(min_version)
    reported = session.scalars(select(DeviceState.agent_version).distinct())
    return sorted(
        v for v in reported if v and VERSION_PATTERN.match(v) and version_tuple(v) < wanted
    )


def _flips(now: datetime) -> Subquery:
    return (
        select(DeviceEvent.device_id, func.count().label("flips"))
        .where(DeviceEvent.kind.in_(TRANSITIONS), DeviceEvent.ts > now - FLAP_WINDOW)
        .group_by(DeviceEvent.device_id)
        .subquery("flips")
    )


SCAN_KINDS = frozenset(
    {"offline", "battery_low", "storage_high", "temperature_high", "agent_outdated"}
)


class _Places:
    """The location join, added once and only when some rule is scoped to a place."""

    def __init__(self) -> None:
        self.here: Any = None

    def get(self) -> Any:
        if self.here is None:
            self.here = aliased(Location, name="here")
        return self.here


def _scan_condition(
    session: Session, rule: AlertRule, now: datetime
) -> tuple[list[ColumnElement[bool]], ColumnElement[Any]]:
    """WHERE clauses over device_state and the measured value (may be NULL) of one rule."""
    state, threshold = DeviceState, rule.threshold or 0.0
    if rule.kind == "offline":
        cutoff = now - timedelta(minutes=threshold)
        return [state.online.is_(False), state.last_seen < cutoff], null()
    if rule.kind == "battery_low":
        not_charging = func.coalesce(_metric("charging"), 0) < 0.5
        battery = state.battery.expression
        return [state.online.is_(True), state.battery < threshold, not_charging], battery
    if rule.kind in ("storage_high", "temperature_high"):
        metric = _metric("storage" if rule.kind == "storage_high" else "temperature")
        return [state.online.is_(True), metric > threshold], metric
    if rule.kind == "agent_outdated":
        old = outdated_versions(session, rule.min_version or "0")
        return [state.agent_version.in_(old)], null()
    raise ValueError(f"{rule.kind!r} is not evaluated in the shared scan")


def _scope(rule: AlertRule, places: _Places) -> list[ColumnElement[bool]]:
    """The rule's prisons, device kinds, tag and place, over the device row."""
    where: list[ColumnElement[bool]] = []
    if rule.prisons:
        where.append(Device.prison_code.in_(rule.prisons))
    if rule.device_kinds:
        where.append(Device.kind.in_(rule.device_kinds))
    if rule.tag:
        tagged = select(DeviceTag.device_id).where(
            DeviceTag.device_id == Device.id, DeviceTag.tag == rule.tag
        )
        where.append(tagged.exists())
    if rule.location_prefix:
        here = places.get()
        prefix = rule.location_prefix.replace("%", "").replace("_", r"\_")
        under = here.path.like(f"{prefix}-%", escape="\\")
        where.append((here.path == rule.location_prefix) | under)
    return where


def _what(rule: AlertRule) -> str:
    return KINDS[rule.kind].describe(rule.threshold, rule.min_version)


def _scan_rows(session: Session, rules: Sequence[AlertRule], now: datetime) -> Select[Any]:
    """The state rules' matches from ONE pass over device_state.

    A full scan of device_state is the cost of a pass, so it is done once: each row carries
    the ids of the rules it matched (and their measured values) in two arrays, unnested into
    one row per match. Rows matching no rule are dropped by the scan's own WHERE.
    """
    places = _Places()
    hits: list[ColumnElement[int | None]] = []
    values: list[ColumnElement[float]] = []
    anything: list[ColumnElement[bool]] = []
    for rule in rules:
        where, value = _scan_condition(session, rule, now)
        matched = and_(*where, *_scope(rule, places))
        anything.append(matched)
        hits.append(case((matched, literal(rule.id, Integer)), else_=null()))
        values.append(cast(value, Float))
    scan = (
        select(
            Device.id.label("device_id"),
            Device.prison_code.label("prison_code"),
            Device.location_id.label("location_id"),
            array[Any](hits, type_=Integer).label("hits"),
            array[Any](values, type_=Float).label("vals"),
        )
        .select_from(DeviceState)
        .join(Device, Device.id == DeviceState.device_id)
    )
    if places.here is not None:
        scan = scan.outerjoin(places.here, places.here.id == Device.location_id)
    scanned = scan.where(Device.lifecycle == "enrolled", or_(*anything)).subquery("scanned")
    matches = (
        func.unnest(scanned.c.hits, scanned.c.vals)
        .table_valued("rule_id", "value")
        .render_derived(name="matched")
    )
    what = case({r.id: _what(r) for r in rules}, value=matches.c.rule_id)
    return (
        select(
            matches.c.rule_id,
            scanned.c.device_id,
            scanned.c.prison_code,
            scanned.c.location_id,
            matches.c.value,
            what,
        )
        .select_from(scanned)
        .join(matches, true())
        .where(matches.c.rule_id.is_not(None))
    )


def _side_rows(rule: AlertRule, now: datetime) -> Select[Any]:
    """Drift and flapping start from their own small tables and join only matched devices."""
    threshold = int(rule.threshold or 1)
    if rule.kind == "config_drift":
        # Desired against what the device last reported; a version it failed to apply counts
        # as not applied. Devices with no desired configuration cannot drift.
        desired = DesiredConfig
        applied = case(
            (desired.reported_status == "failed", desired.reported_version - 1),
            else_=desired.reported_version,
        )
        value: ColumnElement[Any] = desired.version - func.least(applied, desired.version)
        source: Any = desired
        on, where = desired.device_id == Device.id, [value >= threshold]
    elif rule.kind == "flapping":
        flips = _flips(now)
        source, on = flips, flips.c.device_id == Device.id
        value, where = flips.c.flips, [flips.c.flips > threshold]
    else:
        raise ValueError(f"{rule.kind!r} is evaluated in the shared scan")
    places = _Places()
    scope = _scope(rule, places)
    stmt = (
        select(
            literal(rule.id, Integer).label("rule_id"),
            Device.id,
            Device.prison_code,
            Device.location_id,
            cast(value, Float).label("value"),
            literal(_what(rule)).label("what"),
        )
        .select_from(source)
        .join(Device, on)
    )
    if places.here is not None:
        stmt = stmt.outerjoin(places.here, places.here.id == Device.location_id)
    return stmt.where(Device.lifecycle == "enrolled", *where, *scope)


def match_insert(session: Session, rules: Sequence[AlertRule], now: datetime) -> Insert:
    """INSERT INTO alert_match (rule_id, device_id, prison_code, location_id, value, what)."""
    scanned = [rule for rule in rules if rule.kind in SCAN_KINDS]
    parts = [_side_rows(rule, now) for rule in rules if rule.kind not in SCAN_KINDS]
    if scanned:
        parts.insert(0, _scan_rows(session, scanned, now))
    return insert(MATCH).from_select(MATCH_COLUMNS, union_all(*parts))
