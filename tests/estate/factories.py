"""Builders for estate and device tests: the API on a migrated database, users, devices."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session

from fleet.auth.service import create_user, issue_token
from fleet.context import Context
from fleet.db import transaction
from fleet.devices.models import Device, DeviceState
from fleet.enrolment.service import new_device_id
from fleet.estate.service import generate_locations, location_by_path, seed_prisons
from fleet.migrate import upgrade
from fleet.settings import Settings
from tests.services.api_server import running_api

_names = itertools.count(1)


def sqlite_context(directory: Path) -> Context:
    """A Context on a fresh SQLite file at head with the prisons seeded."""
    settings = Settings(
        database_url=f"sqlite:///{directory / 'estate.db'}", profile="test", data_dir=directory
    )
    ctx = Context(settings)
    upgrade(ctx.engine)
    with transaction(ctx.sessions) as session:
        seed_prisons(session=session)
    return ctx


def seed_locations(ctx: Context) -> None:
    """MDI: 2 wings x 2 landings x 3 cells; LEI: 1 wing x 1 landing x 2 cells."""
    with transaction(ctx.sessions) as session:
        generate_locations(session=session, prison_code="MDI", wings=2, landings=2, cells=3)
        generate_locations(session=session, prison_code="LEI", wings=1, landings=1, cells=2)


@dataclass
class Api:
    ctx: Context
    client: httpx.Client
    _tokens: dict[tuple[str, tuple[str, ...]], dict[str, str]] = field(default_factory=dict)

    def auth(self, role: str = "estate-admin", prisons: Sequence[str] = ()) -> dict[str, str]:
        """Bearer headers for a user of this role and caseload (made once, then reused)."""
        key = (role, tuple(prisons))
        if key not in self._tokens:
            with transaction(self.ctx.sessions) as session:
                user = create_user(
                    session=session, username=f"user{next(_names)}", role=role, prisons=prisons
                )
                token = issue_token(session=session, user=user)
            self._tokens[key] = {"Authorization": f"Bearer {token}"}
        return self._tokens[key]

    def get(
        self, url: str, role: str = "estate-admin", prisons: Sequence[str] = (), **kw: Any
    ) -> httpx.Response:
        headers = {**self.auth(role, prisons), **kw.pop("headers", {})}
        return self.client.get(url, headers=headers, **kw)

    def post(
        self, url: str, role: str = "estate-admin", prisons: Sequence[str] = (), **kw: Any
    ) -> httpx.Response:
        headers = {**self.auth(role, prisons), **kw.pop("headers", {})}
        return self.client.post(url, headers=headers, **kw)


@contextmanager
def api_for(ctx: Context) -> Iterator[Api]:
    """The real app served by uvicorn on a free port, and an HTTP client for it."""
    with running_api(ctx.settings) as base, httpx.Client(base_url=base, timeout=30) as client:
        yield Api(ctx, client)


def add_device(
    session: Session,
    *,
    prison: str,
    kind: str = "in_cell_phone",
    location: str | None = None,
    lifecycle: str = "enrolled",
    serial: str | None = None,
    online: bool | None = None,
    health: str = "ok",
    battery: float | None = None,
    last_seen: datetime | None = None,
    metrics: dict[str, float] | None = None,
) -> Device:
    """A device, with a state row unless `online` is None (never reported)."""
    place = location_by_path(session=session, path=location) if location else None
    device_id = new_device_id(session=session, prison_code=prison, kind=kind)
    device = Device(
        id=device_id,
        serial=serial or f"SN-{device_id}",
        kind=kind,
        prison_code=prison,
        location_id=place.id if place else None,
        lifecycle=lifecycle,
    )
    session.add(device)
    session.flush()
    if online is not None:
        session.add(
            DeviceState(
                device_id=device.id,
                online=online,
                state="online" if online else "offline",
                health=health,
                battery=battery,
                last_seen=last_seen,
                metrics=metrics or {},
                agent_version="1.2.3",
                config_version=4,
            )
        )
        session.flush()
    return device
