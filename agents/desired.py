"""Sections of the desired configuration the agent understands natively, checked and applied.

Devices without Python (in-cell phones, most tablets) are configured only this way. Each
section the agent knows is checked; a valid document is applied by writing each section as its
own file under `desired/` in the state directory, where the device's kiosk launcher, app
allow-list and network manager read it. Keys the agent does not know are kept for newer agents.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson

from agents.state import write_file_atomically

SECTIONS_DIR = "desired"
APP_ID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)+$")  # reverse-DNS, e.g. uk.gov.x
WIFI_SECURITY = ("open", "wpa2-psk", "wpa3-sae", "wpa2-enterprise")
MAX_APPS = 500
MAX_NETWORKS = 20


class SectionError(ValueError):
    """A section the agent refuses; the message names the key and what is wrong."""


def _apps(value: Any) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_APPS:
        raise SectionError(f"apps_allowed must be a list of at most {MAX_APPS} app ids")
    for app in value:
        if not isinstance(app, str) or not APP_ID_RE.match(app):
            raise SectionError(f"apps_allowed: {app!r} is not an app id like uk.gov.justice.phone")
    return sorted(set(value))


def _kiosk(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SectionError("kiosk must be an object with enabled and app")
    unknown = set(value) - {"enabled", "app", "idle_timeout_s"}
    if unknown:
        raise SectionError(f"kiosk: unknown setting(s) {', '.join(sorted(unknown))}")
    if not isinstance(value.get("enabled"), bool):
        raise SectionError("kiosk.enabled must be true or false")
    app = value.get("app")
    if value["enabled"] and (not isinstance(app, str) or not APP_ID_RE.match(app)):
        raise SectionError("kiosk.app must be the app id the kiosk runs")
    idle = value.get("idle_timeout_s", 300)
    if isinstance(idle, bool) or not isinstance(idle, int) or not 10 <= idle <= 86_400:
        raise SectionError("kiosk.idle_timeout_s must be whole seconds from 10 to 86400")
    return {"enabled": value["enabled"], "app": app, "idle_timeout_s": idle}


def _network(index: int, value: Any) -> dict[str, Any]:
    where = f"wifi[{index}]"
    if not isinstance(value, dict):
        raise SectionError(f"{where} must be an object with ssid and security")
    ssid, security = value.get("ssid"), value.get("security")
    if not isinstance(ssid, str) or not 1 <= len(ssid.encode()) <= 32:
        raise SectionError(f"{where}.ssid must be 1 to 32 bytes")
    if security not in WIFI_SECURITY:
        raise SectionError(f"{where}.security must be one of {', '.join(WIFI_SECURITY)}")
    network = {"ssid": ssid, "security": security, "hidden": bool(value.get("hidden", False))}
    if security in ("wpa2-psk", "wpa3-sae"):
        psk = value.get("psk")
        if not isinstance(psk, str) or not 8 <= len(psk) <= 63:
            raise SectionError(f"{where}.psk must be 8 to 63 characters")
        network["psk"] = psk
    return network


def _wifi(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or len(value) > MAX_NETWORKS:
        raise SectionError(f"wifi must be a list of at most {MAX_NETWORKS} networks")
    return [_network(i, network) for i, network in enumerate(value)]


CHECKERS = {"apps_allowed": _apps, "kiosk": _kiosk, "wifi": _wifi}


def check_sections(doc: dict[str, Any]) -> dict[str, Any]:
    """The sections this agent applies, normalised; SectionError for the first bad one."""
    return {key: check(doc[key]) for key, check in CHECKERS.items() if key in doc}


def apply_sections(sections: dict[str, Any], state_dir: Path) -> None:
    """Write each section atomically; sections no longer desired are removed."""
    folder = state_dir / SECTIONS_DIR
    folder.mkdir(mode=0o700, exist_ok=True)
    for key in CHECKERS:
        path = folder / f"{key}.json"
        if key in sections:
            write_file_atomically(path, orjson.dumps(sections[key], option=orjson.OPT_INDENT_2))
        else:
            path.unlink(missing_ok=True)
