"""The frozen inventory of a job: built once at launch, hashed, and written into each run."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from fleet.devices.models import Device

InventoryBuilder = Callable[[Session, Sequence[Device]], dict[str, Any]]


class InventoryUnavailable(Exception):
    """The MQTT automation layer that builds device inventories is not installed."""


def mqtt_inventory(session: Session, devices: Sequence[Device]) -> dict[str, Any]:
    """The inventory whose hosts are reached over the agents' MQTT link."""
    try:
        from fleet.automation.inventory import build_inventory
    except ImportError as exc:
        raise InventoryUnavailable(
            "the MQTT automation layer (fleet.automation) is not installed, so no job can reach "
            "a device"
        ) from exc
    inventory: dict[str, Any] = build_inventory(session, devices)
    return inventory


def fingerprint(inventory: dict[str, Any]) -> str:
    """SHA-256 of the inventory in canonical JSON: the same hosts and vars, the same hash."""
    canonical = json.dumps(inventory, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _as_group_tree(inventory: dict[str, Any]) -> dict[str, Any]:
    """Script-style JSON (`_meta.hostvars`, groups with host lists) as the YAML plugin reads it."""
    if "_meta" not in inventory:
        return inventory
    hostvars: dict[str, Any] = inventory["_meta"].get("hostvars", {})
    groups: dict[str, Any] = {}
    for name, group in inventory.items():
        if name in ("_meta", "all") or not isinstance(group, dict):
            continue
        groups[name] = {
            "hosts": dict.fromkeys(group.get("hosts", [])),
            "vars": group.get("vars", {}),
            "children": dict.fromkeys(group.get("children", [])),
        }
    every = inventory.get("all", {}) if isinstance(inventory.get("all"), dict) else {}
    return {
        "all": {
            "hosts": {host: vars_ or {} for host, vars_ in hostvars.items()},
            "vars": every.get("vars", {}),
            "children": groups,
        }
    }


def write_frozen(inventory: dict[str, Any], private_data_dir: Path) -> Path:
    """Write the job's inventory as inventory/hosts.json (owner-only) for ansible-runner."""
    folder = private_data_dir / "inventory"
    folder.mkdir(mode=0o700)
    path = folder / "hosts.json"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(_as_group_tree(inventory), handle, sort_keys=True, default=str)
    return path
