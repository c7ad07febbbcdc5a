"""Rule evaluation on PostgreSQL: each kind, no duplicates, grouping, quiet windows, resolving."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from facilities.faults.fleet_raised import raise_from_fleet
from fleet.alerts.service import acknowledge
from fleet.alerts.tasks import EVALUATE
from fleet.automation.models import DesiredConfig, DeviceTag
from fleet.context import Context
from fleet.db import transaction, utcnow
from fleet.devices.models import DeviceEvent, DeviceState
from fleet.tasks.app import make_celery
from tests.alerts.support import add_rule, add_window, alerts, open_alerts, run_pass
from tests.estate.factories import add_device, seed_locations

# A Wednesday in November (UTC equals UK time then), so scheduled windows are easy to read.
NOW = datetime(2026, 11, 25, 23, 0, tzinfo=UTC)


def _device(ctx: Context, cell: str, **state: object) -> str:
    fields: dict[str, object] = {"online": True, "last_seen": NOW, "metrics": {}}
    fields.update(state)
    with transaction(ctx.sessions) as session:
        return add_device(session, prison="MDI", location=cell, **fields).id  # type: ignore[arg-type]


def _set_state(ctx: Context, device_id: str, **values: object) -> None:
    with transaction(ctx.sessions) as session:
        session.execute(
            update(DeviceState).where(DeviceState.device_id == device_id).values(**values)
        )


def test_each_kind_matches_only_the_devices_in_trouble(pg_context: Context) -> None:
    seed_locations(pg_context)
    old = NOW - timedelta(hours=2)
    offline = _device(pg_context, "MDI-1-1-001", online=False, last_seen=old)
    _device(pg_context, "MDI-1-1-002", online=False, last_seen=NOW - timedelta(minutes=5))
    flat = _device(pg_context, "MDI-1-2-001", battery=9.0, metrics={"charging": 0.0})
    _device(pg_context, "MDI-1-2-002", battery=9.0, metrics={"charging": 1.0})
    full = _device(pg_context, "MDI-2-1-001", metrics={"storage": 97.5, "temperature": 40})
    hot = _device(pg_context, "MDI-2-1-002", metrics={"storage": "n/a", "temperature": 81})
    outdated = _device(pg_context, "MDI-2-2-001")  # agent 1.2.3 from the factory
    _set_state(pg_context, outdated, agent_version="1.10.0")
    drifted = _device(pg_context, "MDI-2-2-002")
    _set_state(pg_context, drifted, agent_version="1.9.9")
    failed_once = _device(pg_context, "MDI-2-1-003")
    with transaction(pg_context.sessions) as session:
        for device_id, wanted, reported, status in (
            (drifted, 7, 5, "applied"),  # two versions behind
            (failed_once, 4, 4, "failed"),  # one behind: its newest failed to apply
        ):
            session.add(
                DesiredConfig(
                    device_id=device_id,
                    version=wanted,
                    updated_by="tester",
                    reported_version=reported,
                    reported_status=status,
                )
            )
    flapper = _device(pg_context, "MDI-2-2-003")
    with transaction(pg_context.sessions) as session:
        for minute in range(8):
            session.add(
                DeviceEvent(
                    device_id=flapper,
                    kind=("online", "lost")[minute % 2],
                    ts=NOW - timedelta(minutes=5 * minute + 1),
                )
            )
    rules = {
        "offline": add_rule(pg_context, kind="offline", threshold=30),
        "battery_low": add_rule(pg_context, kind="battery_low", threshold=15),
        "storage_high": add_rule(pg_context, kind="storage_high", threshold=90),
        "temperature_high": add_rule(pg_context, kind="temperature_high", threshold=70),
        "agent_outdated": add_rule(pg_context, kind="agent_outdated", min_version="1.10.0"),
        "config_drift": add_rule(pg_context, kind="config_drift", threshold=2),
        "flapping": add_rule(pg_context, kind="flapping", threshold=6),
    }
    result = run_pass(pg_context, NOW)
    fired = {
        kind: [a.device_id for a in open_alerts(pg_context, rule_id=rid)]
        for kind, rid in rules.items()
    }
    # 1.9.9 and the factory's 1.2.3 are older than 1.10.0 (compared as numbers, not text).
    assert fired["agent_outdated"]
    assert outdated not in fired["agent_outdated"]
    assert drifted in fired["agent_outdated"]
    del fired["agent_outdated"]
    assert fired == {
        "offline": [offline],
        "battery_low": [flat],
        "storage_high": [full],
        "temperature_high": [hot],
        "config_drift": [drifted],
        "flapping": [flapper],
    }
    assert result.rules == 7
    [battery] = open_alerts(pg_context, rule_id=rules["battery_low"])
    assert battery.value == 9.0
    [drift] = open_alerts(pg_context, rule_id=rules["config_drift"])
    assert (drift.value, drift.kind) == (2.0, "config_drift")
    assert (
        drift.summary == f"{drifted} configuration 2 versions or more behind the version set for it"
    )


def test_a_pass_repeated_opens_nothing_new_and_resolves_when_the_device_returns(
    pg_context: Context,
) -> None:
    seed_locations(pg_context)
    device = _device(pg_context, "MDI-1-1-001", online=False, last_seen=NOW - timedelta(hours=1))
    rule_id = add_rule(pg_context, kind="offline", threshold=30, severity="critical")
    first = run_pass(pg_context, NOW)
    again = run_pass(pg_context, NOW + timedelta(minutes=1))
    assert len(first.opened) == 1
    assert again.opened == []
    assert again.resolved == []
    [alert] = alerts(pg_context, rule_id=rule_id)
    assert (alert.status, alert.device_id, alert.severity) == ("firing", device, "critical")
    with transaction(pg_context.sessions) as session:
        acknowledge(session=session, actor="sam", ids=[alert.id], caseload=None, now=NOW)
    run_pass(pg_context, NOW + timedelta(minutes=2))
    [still] = alerts(pg_context, rule_id=rule_id)
    assert (still.status, still.acknowledged_by) == ("acknowledged", "sam")

    _set_state(pg_context, device, online=True, last_seen=NOW + timedelta(minutes=3))
    back = run_pass(pg_context, NOW + timedelta(minutes=3))
    assert back.resolved == [alert.id]
    [closed] = alerts(pg_context, rule_id=rule_id)
    assert closed.status == "resolved"
    assert closed.resolved_by == "estate-alerts"
    assert closed.resolved_at == NOW + timedelta(minutes=3)
    assert closed.resolution == "The condition cleared."


def test_devices_on_one_landing_become_one_alert_linked_to_the_fleet_fault(
    pg_context: Context,
) -> None:
    seed_locations(pg_context)
    silent = NOW - timedelta(hours=2)
    landing = [
        _device(pg_context, f"MDI-1-1-00{cell}", online=False, last_seen=silent)
        for cell in (1, 2, 3)
    ]
    alone = _device(pg_context, "MDI-2-1-001", online=False, last_seen=silent)
    rule_id = add_rule(pg_context, kind="offline", threshold=30, group_min=3)
    run_pass(pg_context, NOW)
    single, grouped = sorted(open_alerts(pg_context, rule_id=rule_id), key=lambda a: a.subject)
    assert grouped.device_id is None
    assert grouped.devices == sorted(landing)
    assert grouped.summary == "3 devices on landing MDI-1-1 offline for longer than 30 minutes"
    assert grouped.fault_id is None
    assert single.device_id == alone

    with transaction(pg_context.sessions) as session:
        faults = raise_from_fleet(session=session, now=NOW, silent_after=timedelta(hours=1))
    landing_fault = next(f for f in faults if f.device_id is None)
    run_pass(pg_context, NOW + timedelta(minutes=1))
    [linked] = [a for a in open_alerts(pg_context, rule_id=rule_id) if a.location_id]
    assert linked.id == grouped.id
    assert linked.fault_id == landing_fault.id

    # One device comes back: below the group size, the rest are alerts of their own.
    _set_state(pg_context, landing[0], online=True, last_seen=NOW + timedelta(minutes=2))
    result = run_pass(pg_context, NOW + timedelta(minutes=2))
    assert grouped.id in result.resolved
    now_open = {a.device_id for a in open_alerts(pg_context, rule_id=rule_id)}
    assert now_open == {landing[1], landing[2], alone}


def test_scheduled_night_window_silences_only_the_rules_it_names(pg_context: Context) -> None:
    seed_locations(pg_context)
    device = _device(pg_context, "MDI-1-1-001", online=False, last_seen=NOW - timedelta(hours=1))
    hot = _device(pg_context, "MDI-1-2-001", metrics={"temperature": 90})
    offline_rule = add_rule(pg_context, kind="offline", threshold=30)
    hot_rule = add_rule(pg_context, kind="temperature_high", threshold=70)
    add_window(
        pg_context,
        now=NOW,
        prison_code="MDI",
        kind="scheduled",
        reason="night power-down",
        rule_kinds=["offline"],
        start_time="22:00",
        end_time="06:30",
    )
    night = run_pass(pg_context, NOW)
    assert open_alerts(pg_context, rule_id=offline_rule) == []
    assert [a.device_id for a in open_alerts(pg_context, rule_id=hot_rule)] == [hot]
    assert night.silenced == 1
    assert [q.label for q in night.quiet] == ["Quiet: night power-down until 06:30 on Thu 26 Nov"]

    morning = NOW + timedelta(hours=7, minutes=31)  # 06:31 on Thursday
    run_pass(pg_context, morning)
    assert [a.device_id for a in open_alerts(pg_context, rule_id=offline_rule)] == [device]


def test_ad_hoc_lockdown_silences_every_rule_for_its_prison_until_it_ends(
    pg_context: Context,
) -> None:
    seed_locations(pg_context)
    _device(pg_context, "MDI-1-1-001", online=False, last_seen=NOW - timedelta(hours=1))
    with transaction(pg_context.sessions) as session:
        lei = add_device(
            session,
            prison="LEI",
            location="LEI-1-1-001",
            online=False,
            last_seen=NOW - timedelta(hours=1),
        ).id
    rule_id = add_rule(pg_context, kind="offline", threshold=30)
    add_window(
        pg_context,
        now=NOW,
        prison_code="MDI",
        kind="ad_hoc",
        reason="lockdown",
        starts_at=NOW - timedelta(minutes=10),
        ends_at=NOW + timedelta(hours=2),
    )
    run_pass(pg_context, NOW)
    assert [a.device_id for a in open_alerts(pg_context, rule_id=rule_id)] == [lei]
    run_pass(pg_context, NOW + timedelta(hours=2))
    assert len(open_alerts(pg_context, rule_id=rule_id)) == 2


def test_a_rule_scoped_to_a_kind_and_a_wing_ignores_the_rest(pg_context: Context) -> None:
    seed_locations(pg_context)
    silent = NOW - timedelta(hours=1)
    on_wing_2 = _device(pg_context, "MDI-2-1-001", online=False, last_seen=silent)
    _device(pg_context, "MDI-1-1-001", online=False, last_seen=silent)
    with transaction(pg_context.sessions) as session:
        add_device(
            session,
            prison="MDI",
            kind="laptop",
            location="MDI-2-1-002",
            online=False,
            last_seen=silent,
        )
    rule_id = add_rule(
        pg_context,
        kind="offline",
        threshold=30,
        prisons=["MDI"],
        device_kinds=["in_cell_phone"],
        location_prefix="MDI-2",
    )
    tagged = add_rule(pg_context, kind="offline", threshold=30, tag="pilot")
    with transaction(pg_context.sessions) as session:
        session.add(DeviceTag(device_id=on_wing_2, tag="pilot"))
    run_pass(pg_context, NOW)
    assert [a.device_id for a in open_alerts(pg_context, rule_id=rule_id)] == [on_wing_2]
    assert [a.device_id for a in open_alerts(pg_context, rule_id=tagged)] == [on_wing_2]


def test_the_beat_task_runs_a_pass_and_running_it_again_changes_nothing(
    pg_context: Context,
) -> None:
    seed_locations(pg_context)
    _device(pg_context, "MDI-1-1-001", online=False, last_seen=utcnow() - timedelta(hours=1))
    add_rule(pg_context, kind="offline", threshold=30)
    app = make_celery(pg_context.settings)
    try:
        assert EVALUATE in app.conf.beat_schedule
        first = app.tasks[EVALUATE].delay().get()
        again = app.tasks[EVALUATE].delay().get()
    finally:
        app.close_context()
    assert (first["opened"], first["rules"]) == (1, 1)
    assert (again["opened"], again["resolved"]) == (0, 0)
    assert len(open_alerts(pg_context)) == 1
