"""A ready-made template for each shipped playbook, with the JSON Schema its variables must fit."""

from __future__ import annotations

from typing import Any

from fleet.jobs.schemas import TemplateIn

APP_ID = {"type": "string", "pattern": r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)+$"}
NETWORK = {
    "type": "object",
    "required": ["ssid", "security"],
    "additionalProperties": False,
    "properties": {
        "ssid": {"type": "string", "minLength": 1, "maxLength": 32},
        "security": {"enum": ["open", "wpa2-psk", "wpa3-sae", "wpa2-enterprise"]},
        "psk": {"type": "string", "minLength": 8, "maxLength": 63},
        "hidden": {"type": "boolean"},
    },
}
# Careful defaults for anything that touches many devices: a canary, bake time, small waves.
CAUTIOUS = {"canary": 5, "bake_s": 600, "wave_percent": [10, 50, 100], "failure_threshold_pct": 5}


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


CATALOGUE: list[dict[str, Any]] = [
    {
        "name": "Wi-Fi networks",
        "description": "Set the Wi-Fi networks devices join (desired configuration; any device).",
        "playbook": "wifi-profile.yml",
        "variables": {"wifi_networks": []},
        "variables_schema": _schema(
            {"wifi_networks": {"type": "array", "minItems": 1, "maxItems": 20, "items": NETWORK}},
            ["wifi_networks"],
        ),
        "rollout": CAUTIOUS,
    },
    {
        "name": "Kiosk and app allow-list",
        "description": "Set the apps devices may run and their kiosk mode (desired configuration).",
        "playbook": "kiosk-allow-list.yml",
        "variables": {"apps_allowed": [], "kiosk_enabled": False},
        "variables_schema": _schema(
            {
                "apps_allowed": {"type": "array", "maxItems": 500, "items": APP_ID},
                "kiosk_enabled": {"type": "boolean"},
                "kiosk_app": APP_ID,
                "kiosk_idle_timeout_s": {"type": "integer", "minimum": 10, "maximum": 86400},
            },
            ["apps_allowed"],
        ),
        "rollout": CAUTIOUS,
    },
    {
        "name": "Agent report interval",
        "description": "Set how often agents report health (desired configuration).",
        "playbook": "agent-settings.yml",
        "variables": {"report_interval_s": 60},
        "variables_schema": _schema(
            {"report_interval_s": {"type": "integer", "minimum": 10, "maximum": 3600}},
            ["report_interval_s"],
        ),
    },
    {
        "name": "Laptop package",
        "description": "Install, update or remove one package on laptops.",
        "playbook": "laptop-package.yml",
        "selector": {"kinds": ["laptop"]},
        "variables": {"package_state": "present"},
        "variables_schema": _schema(
            {
                "package_name": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9.+_-]*$"},
                "package_state": {"enum": ["present", "latest", "absent"]},
            },
            ["package_name", "package_state"],
        ),
        "timeout_s": 3600,
        "rollout": CAUTIOUS,
    },
    {
        "name": "Collect diagnostics",
        "description": "Fetch log files from devices into the job's files.",
        "playbook": "collect-diagnostics.yml",
        "variables": {"log_files": ["~/agent.log"]},
        "variables_schema": _schema(
            {
                "log_files": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 20,
                    "items": {"type": "string", "minLength": 1, "maxLength": 300},
                }
            },
            ["log_files"],
        ),
    },
    {
        "name": "Reboot",
        "description": "Reboot devices a few seconds after they answer.",
        "playbook": "reboot.yml",
        "variables": {"reboot_delay_s": 5},
        "variables_schema": _schema(
            {
                "reboot_command": {"enum": ["systemctl reboot", "reboot"]},
                "reboot_delay_s": {"type": "integer", "minimum": 1, "maximum": 600},
            },
            [],
        ),
    },
]


def templates() -> list[TemplateIn]:
    """The catalogue as validated template definitions."""
    return [TemplateIn.model_validate(entry) for entry in CATALOGUE]
