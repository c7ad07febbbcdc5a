"""Programmes, plans, devices and daily snapshots for rollout tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import httpx
from sqlalchemy import select, update

from fleet.context import Context
from fleet.db import transaction
from fleet.devices.models import Device, DeviceState
from fleet.estate.models import Location
from fleet.rollout.history import take_snapshots
from fleet.rollout.models import PrisonPlan, Programme
from fleet.rollout.schemas import PlanCreate, ProgrammeCreate
from fleet.rollout.service import add_plan, create_programme
from tests.estate.factories import Api, add_device

TODAY = date(2026, 6, 30)


def programme_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "In-cell phones 2026",
        "description": "Phones in every cell",
        "device_kinds": ["in_cell_phone"],
        "owner": "Digital rollout team",
        "start_date": "2026-01-05",
        "target_date": "2026-10-30",
        "enrolment_threshold_pct": 90,
        "gate_online_pct": 95,
        "gate_days": 5,
    }
    body.update(overrides)
    return body


def send(
    api: Api,
    method: str,
    url: str,
    role: str = "estate-admin",
    prisons: Sequence[str] = (),
    **kw: Any,
) -> httpx.Response:
    return api.client.request(method, url, headers=api.auth(role, prisons), **kw)


def make_plan(
    ctx: Context,
    *,
    prison: str = "MDI",
    planned: date = date(2026, 7, 31),
    expected: int | None = 10,
    **programme: Any,
) -> int:
    """A programme (unless one exists) with one prison plan; returns the plan id."""
    with transaction(ctx.sessions) as session:
        existing = session.scalars(select(Programme)).first()
        if existing is None:
            existing = create_programme(
                session=session, actor="tester", data=ProgrammeCreate(**programme_body(**programme))
            )
        plan = add_plan(
            session=session,
            actor="tester",
            programme=existing,
            data=PlanCreate(prison_code=prison, planned_go_live=planned, expected_devices=expected),
        )
        return plan.id


def add_devices(ctx: Context, prison: str, count: int, *, online: bool = True, **kw: Any) -> None:
    with transaction(ctx.sessions) as session:
        for _ in range(count):
            add_device(session, prison=prison, online=online, **kw)


def set_online(ctx: Context, prison: str, online: int) -> None:
    """The first `online` devices at the prison are online, the rest offline."""
    with transaction(ctx.sessions) as session:
        ids = list(
            session.scalars(
                select(Device.id).where(Device.prison_code == prison).order_by(Device.id)
            )
        )
        session.execute(
            update(DeviceState).where(DeviceState.device_id.in_(ids)).values(online=False)
        )
        session.execute(
            update(DeviceState).where(DeviceState.device_id.in_(ids[:online])).values(online=True)
        )


def go_dark(ctx: Context, landing: str) -> None:
    """Every device in the cells of `landing` (e.g. MDI-2-2) goes offline, as in a power cut."""
    with transaction(ctx.sessions) as session:
        cells = select(Location.id).where(Location.path.like(f"{landing}-%"))
        devices = select(Device.id).where(Device.location_id.in_(cells))
        session.execute(
            update(DeviceState).where(DeviceState.device_id.in_(devices)).values(online=False)
        )


def snapshot(ctx: Context, day: date) -> int:
    with transaction(ctx.sessions) as session:
        return take_snapshots(session=session, day=day)


def plan_row(ctx: Context, plan_id: int) -> PrisonPlan:
    with transaction(ctx.sessions) as session:
        plan = session.get(PrisonPlan, plan_id)
        assert plan is not None
        return plan
