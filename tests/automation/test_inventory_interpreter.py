"""The inventory points Ansible at the interpreter each device reported, else the default."""

from __future__ import annotations

from sqlalchemy import select

from fleet.automation.inventory import (
    LAPTOP_PYTHON,
    NO_PYTHON_GROUP,
    PYTHON_GROUP,
    build_inventory,
)
from fleet.context import Context
from fleet.db import transaction
from fleet.devices.models import Device, DeviceState

# Device id -> (kind, the interpreter its agent reported or None).
ESTATE = {
    "laptop-reported": ("laptop", "/usr/local/bin/python3"),
    "laptop-silent": ("laptop", None),
    "tablet-reported": ("tablet", "/usr/libexec/platform-python"),
    "phone-silent": ("in_cell_phone", None),
    "kiosk-no-state": ("kiosk", None),
}


def test_reported_interpreters_win_and_laptops_fall_back(pg_context: Context) -> None:
    with transaction(pg_context.sessions) as session:
        for device_id, (kind, _python) in ESTATE.items():
            session.add(
                Device(
                    id=device_id,
                    serial=f"SN-{device_id}",
                    kind=kind,
                    prison_code="MDI",
                    lifecycle="enrolled",
                )
            )
        session.flush()
        for device_id, (_kind, python) in ESTATE.items():
            if device_id != "kiosk-no-state":
                session.add(DeviceState(device_id=device_id, python_interpreter=python))
    with transaction(pg_context.sessions) as session:
        devices = list(session.scalars(select(Device)))
        inventory = build_inventory(session, devices)

    hosts = inventory["all"]["hosts"]
    interpreters = {d: hosts[d].get("ansible_python_interpreter") for d in ESTATE}
    assert interpreters == {
        "laptop-reported": "/usr/local/bin/python3",
        "laptop-silent": LAPTOP_PYTHON,
        "tablet-reported": "/usr/libexec/platform-python",
        "phone-silent": None,
        "kiosk-no-state": None,
    }
    assert {d: hosts[d]["estate_python"] for d in ESTATE} == {
        "laptop-reported": True,
        "laptop-silent": True,
        "tablet-reported": True,
        "phone-silent": False,
        "kiosk-no-state": False,
    }
    children = inventory["all"]["children"]
    assert sorted(children[PYTHON_GROUP]["hosts"]) == [
        "laptop-reported",
        "laptop-silent",
        "tablet-reported",
    ]
    assert sorted(children[NO_PYTHON_GROUP]["hosts"]) == ["kiosk-no-state", "phone-silent"]
