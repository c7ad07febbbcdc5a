"""Ansible inventories built from device records: groups by prison, kind, wing, programme, tag.

The same structure is frozen into each job (so a run can be reproduced and audited) and served
to the `estate` inventory plugin for people at a terminal.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet.automation.tags import tags_of
from fleet.devices.models import Device, DeviceState
from fleet.estate.models import Location
from fleet.rollout.models import PrisonPlan, Programme

CONNECTION = "estate_mqtt"
# Kinds whose agents run Python modules even before they report an interpreter; any other
# device runs them once its agent reports one, and otherwise takes only raw commands and the
# desired-configuration path.
PYTHON_KINDS = frozenset({"laptop"})
# An explicit interpreter rather than discovery: discovery takes the first `python3.N` on the
# device's PATH, which on a laptop can be a version-manager shim that fails when run. The one
# the agent reports wins; this is for PYTHON_KINDS devices that have not reported one.
LAPTOP_PYTHON = "/usr/bin/python3"
# Groups to target: Python modules go to PYTHON_GROUP only; NO_PYTHON_GROUP takes raw commands
# and estate_desired_config (the connection plugin refuses modules there).
PYTHON_GROUP = "python"
NO_PYTHON_GROUP = "no_python"
_NOT_NAME = re.compile(r"[^a-z0-9_]+")


def group_name(prefix: str, value: str) -> str:
    """A valid Ansible group name: prefix_value in lower case, other characters as _."""
    return f"{prefix}_{_NOT_NAME.sub('_', value.lower()).strip('_')}"


def _locations(session: Session, devices: Sequence[Device]) -> dict[int, tuple[str, str | None]]:
    """Location id -> (its path, the path of the wing it is on) for the devices' prisons."""
    prisons = {d.prison_code for d in devices if d.location_id is not None}
    if not prisons:
        return {}
    rows = session.execute(
        select(Location.id, Location.parent_id, Location.kind, Location.path).where(
            Location.prison_code.in_(prisons)
        )
    ).all()
    by_id = {row.id: row for row in rows}

    def wing_of(location_id: int | None) -> str | None:
        for _ in range(10):  # the tree is shallow: wing > landing > cell
            row = by_id.get(location_id) if location_id is not None else None
            if row is None:
                return None
            if row.kind == "wing":
                return str(row.path)
            location_id = row.parent_id
        return None

    return {row.id: (str(row.path), wing_of(row.id)) for row in rows}


def reported_pythons(*, session: Session, device_ids: Sequence[str]) -> dict[str, str]:
    """Device id -> the Python interpreter its agent last reported, for those that did."""
    rows = session.execute(
        select(DeviceState.device_id, DeviceState.python_interpreter).where(
            DeviceState.device_id.in_(device_ids), DeviceState.python_interpreter.is_not(None)
        )
    )
    return {device_id: python for device_id, python in rows if python}


def _programmes(session: Session, devices: Sequence[Device]) -> dict[str, list[str]]:
    prisons = {d.prison_code for d in devices}
    if not prisons:
        return {}
    rows = session.execute(
        select(PrisonPlan.prison_code, Programme.name)
        .join(Programme, Programme.id == PrisonPlan.programme_id)
        .where(PrisonPlan.prison_code.in_(prisons))
        .order_by(Programme.name)
    )
    found: dict[str, list[str]] = {}
    for prison, name in rows:
        found.setdefault(prison, []).append(name)
    return found


def host_vars(
    device: Device,
    place: tuple[str, str | None] | None,
    tags: list[str],
    programmes: list[str],
    python: str | None = None,
) -> dict[str, Any]:
    """What a playbook knows about one device: connection settings and its record."""
    location, wing = place or (None, None)
    interpreter = python or (LAPTOP_PYTHON if device.kind in PYTHON_KINDS else None)
    hostvars: dict[str, Any] = {
        "ansible_host": device.id,
        "ansible_connection": CONNECTION,
        "estate_device_id": device.id,
        "estate_serial": device.serial,
        "estate_kind": device.kind,
        "estate_prison": device.prison_code,
        "estate_location": location,
        "estate_wing": wing,
        "estate_lifecycle": device.lifecycle,
        "estate_hostname": device.hostname,
        "estate_tags": tags,
        "estate_programmes": programmes,
        "estate_python": interpreter is not None,
    }
    if interpreter is not None:
        hostvars["ansible_python_interpreter"] = interpreter
    return hostvars


def build_inventory(session: Session, devices: Sequence[Device]) -> dict[str, Any]:
    """A YAML/JSON-style inventory: all.hosts with host vars, all.children with the groups."""
    places = _locations(session, devices)
    tags = tags_of(session=session, device_ids=[d.id for d in devices])
    programmes = _programmes(session, devices)
    pythons = reported_pythons(session=session, device_ids=[d.id for d in devices])
    hosts: dict[str, Any] = {}
    groups: dict[str, dict[str, Any]] = {}

    def add(group: str, device_id: str) -> None:
        groups.setdefault(group, {"hosts": {}})["hosts"][device_id] = {}

    for device in sorted(devices, key=lambda d: d.id):
        place = places.get(device.location_id) if device.location_id is not None else None
        device_tags = tags.get(device.id, [])
        device_programmes = programmes.get(device.prison_code, [])
        hosts[device.id] = host_vars(
            device, place, device_tags, device_programmes, pythons.get(device.id)
        )
        add(group_name("prison", device.prison_code), device.id)
        add(group_name("kind", device.kind), device.id)
        python = hosts[device.id]["estate_python"]
        add(PYTHON_GROUP if python else NO_PYTHON_GROUP, device.id)
        if place is not None and place[1] is not None:
            add(group_name("wing", place[1]), device.id)
        for name in device_programmes:
            add(group_name("programme", name), device.id)
        for tag in device_tags:
            add(group_name("tag", tag), device.id)
    return {"all": {"hosts": hosts, "children": dict(sorted(groups.items()))}}
