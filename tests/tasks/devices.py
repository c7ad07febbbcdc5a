"""Devices that have reported, written straight to the tables the sweep reads."""

from __future__ import annotations

import itertools
from datetime import datetime

from fleet.context import Context
from fleet.db import transaction
from fleet.devices.models import Device, DeviceState

_serials = itertools.count(1)


def add_reporting_device(ctx: Context, *, last_seen: datetime, prison_code: str = "MDI") -> str:
    """An enrolled, online device last heard from at `last_seen`; returns its id."""
    number = next(_serials)
    device_id = f"{prison_code}-T-{number:05d}"
    with transaction(ctx.sessions) as session:
        session.add(
            Device(
                id=device_id,
                serial=f"SWEEP-{number:05d}",
                kind="tablet",
                prison_code=prison_code,
                lifecycle="enrolled",
                enrolled_at=last_seen,
            )
        )
        session.flush()
        session.add(
            DeviceState(
                device_id=device_id,
                online=True,
                state="online",
                boot=1,
                seq=10,
                last_seen=last_seen,
                last_report_ts=last_seen,
                health="ok",
            )
        )
    return device_id
