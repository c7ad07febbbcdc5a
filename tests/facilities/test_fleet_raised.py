"""Faults raised from the fleet: one per silent cell, one per landing or wing that drops."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update

from facilities.faults import fleet_raised
from facilities.faults.models import Fault
from facilities.faults.tasks import RAISE_FROM_FLEET, register
from fleet.context import Context
from fleet.db import transaction, utcnow
from fleet.devices.models import DeviceState
from fleet.tasks.app import make_celery
from tests.estate.factories import Api, add_device
from tests.facilities.builders import report

SILENT_AFTER = timedelta(hours=1)


def _devices(ctx: Context, cells: list[str], *, silent: bool, now: datetime) -> list[str]:
    seen = now - timedelta(hours=3) if silent else now - timedelta(seconds=10)
    with transaction(ctx.sessions) as session:
        return [
            add_device(
                session, prison=cell[:3], location=cell, online=not silent, last_seen=seen
            ).id
            for cell in cells
        ]


def _raise(ctx: Context, now: datetime) -> list[tuple[str, str, str | None]]:
    with transaction(ctx.sessions) as session:
        raised = fleet_raised.raise_from_fleet(session=session, now=now, silent_after=SILENT_AFTER)
        return [(f.category, f.description, f.device_id) for f in raised]


def _open_fleet_faults(ctx: Context) -> list[tuple[str, str | None]]:
    with transaction(ctx.sessions) as session:
        rows = session.execute(
            select(Fault.reference, Fault.device_id).where(Fault.source == "fleet")
        )
        return [(ref, device) for ref, device in rows]


def test_landing_power_loss_raises_one_landing_fault_not_one_per_cell(
    fault_context: Context,
) -> None:
    now = utcnow()
    _devices(fault_context, ["MDI-1-1-001", "MDI-1-1-002", "MDI-1-1-003"], silent=True, now=now)
    lone = _devices(fault_context, ["MDI-2-1-001"], silent=True, now=now)[0]
    _devices(fault_context, ["MDI-2-1-002", "MDI-2-1-003"], silent=False, now=now)
    raised = _raise(fault_context, now)
    assert [(category, device) for category, _, device in raised] == [
        ("power_electrical", None),
        ("in_cell_telephony", lone),
    ]
    assert "3 devices on landing MDI-1-1 fell silent together" in raised[0][1]
    with transaction(fault_context.sessions) as session:
        landing_fault = session.scalars(select(Fault).where(Fault.device_id.is_(None))).one()
        assert landing_fault.priority == "P2"
        assert landing_fault.reporter == fleet_raised.FLEET_ACTOR
    assert _raise(fault_context, now + timedelta(minutes=5)) == []
    assert len(_open_fleet_faults(fault_context)) == 2


def test_a_single_silent_device_raises_one_cell_fault_once(fault_context: Context) -> None:
    now = utcnow()
    _devices(fault_context, ["MDI-1-2-001", "MDI-1-2-002"], silent=False, now=now)
    quiet = _devices(fault_context, ["MDI-1-2-003"], silent=True, now=now)[0]
    _devices(fault_context, ["LEI-1-1-001"], silent=True, now=now)
    app = make_celery(fault_context.settings)
    register(app)
    try:
        first = app.tasks[RAISE_FROM_FLEET].delay().get(timeout=30)
        again = app.tasks[RAISE_FROM_FLEET].delay().get(timeout=30)
    finally:
        app.close_context()
    assert sorted(first) == ["LEI-F-000001", "MDI-F-000001"]
    assert again == []
    assert ("MDI-F-000001", quiet) in _open_fleet_faults(fault_context)


def test_a_wing_that_drops_raises_one_wing_fault(fault_context: Context) -> None:
    now = utcnow()
    cells = [f"MDI-2-{landing}-00{cell}" for landing in (1, 2) for cell in (1, 2, 3)]
    _devices(fault_context, cells, silent=True, now=now)
    raised = _raise(fault_context, now)
    assert len(raised) == 1
    assert "6 devices on wing MDI-2" in raised[0][1]


def test_clearing_a_fleet_fault_shows_whether_the_devices_came_back(
    api: Api, fault_context: Context
) -> None:
    now = utcnow()
    ids = _devices(
        fault_context, ["MDI-1-1-001", "MDI-1-1-002", "MDI-1-1-003"], silent=True, now=now
    )
    _raise(fault_context, now)
    page = api.get("/api/v1/faults", params={"source": "fleet"}).json()
    assert page["count"] == 1
    fault = api.get(f"/api/v1/faults/{page['items'][0]['id']}").json()
    assert fault["location"] == "MDI-1-1"
    assert fault["devices"] == {"online": 0, "total": 3}
    with transaction(fault_context.sessions) as session:
        session.execute(
            update(DeviceState).where(DeviceState.device_id.in_(ids[:2])).values(online=True)
        )
    back = api.get(f"/api/v1/faults/{fault['id']}").json()
    assert back["devices"] == {"online": 2, "total": 3}
    staff = report(api).json()
    assert staff["source"] == "staff"
    assert staff["devices"] is None


def test_faults_flagged_as_blocking_rollout_are_listed_as_blockers(
    api: Api, fault_context: Context
) -> None:
    blocker = report(api, blocks_rollout=True, category="network_point").json()
    report(api)
    assert blocker["blocks_rollout"]
    listed = api.get("/api/v1/faults", params={"blocks_rollout": "true"}).json()
    assert [f["reference"] for f in listed["items"]] == [blocker["reference"]]
    with transaction(fault_context.sessions) as session:
        found = fleet_raised.rollout_blockers(session=session, prison_code="MDI")
        assert [f.reference for f in found] == [blocker["reference"]]
        assert fleet_raised.rollout_blockers(session=session, prison_code="LEI") == []
