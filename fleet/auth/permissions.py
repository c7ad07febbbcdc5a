"""What each role may do; checked by the API dependencies and the web pages."""

from __future__ import annotations

from fleet.auth.models import ROLES

ALL = frozenset(ROLES)

PERMISSIONS: dict[str, frozenset[str]] = {
    "estate:read": ALL,
    "devices:read": ALL,
    "devices:write": frozenset({"estate-admin", "it-support"}),
    "devices:enrol": frozenset({"estate-admin", "it-support", "rollout-manager"}),
    "devices:revoke": frozenset({"estate-admin", "it-support"}),
    "locations:write": frozenset({"estate-admin"}),
    "users:admin": frozenset({"estate-admin"}),
    "audit:read": frozenset({"estate-admin", "it-support"}),
    "ops:read": frozenset({"estate-admin", "it-support"}),
    "rollout:read": ALL,
    "rollout:write": frozenset({"estate-admin", "rollout-manager"}),
    "commands:read": frozenset({"estate-admin", "it-support"}),
    "commands:run": frozenset({"estate-admin", "it-support"}),
    # Reboot and lock interrupt whoever is using the device.
    "commands:disrupt": frozenset({"estate-admin", "it-support"}),
    "faults:read": ALL,
    "faults:report": frozenset({"estate-admin", "facilities", "it-support"}),
    "faults:write": frozenset({"estate-admin", "facilities"}),
    "faults:admin": frozenset({"estate-admin"}),
    "alerts:read": frozenset({"estate-admin", "it-support", "viewer"}),
    "alerts:write": frozenset({"estate-admin", "it-support"}),
    "alert-rules:write": frozenset({"estate-admin", "it-support"}),
    "quiet-windows:write": frozenset({"estate-admin", "it-support"}),
    "alert-routes:write": frozenset({"estate-admin"}),
    "jobs:read": frozenset({"estate-admin", "it-support"}),
    "jobs:launch": frozenset({"estate-admin", "it-support"}),
    # Approving is the second pair of eyes on an estate-wide job; never the launcher's own.
    "jobs:approve": frozenset({"estate-admin", "it-support"}),
    # A template decides which playbook runs with which variables on which devices.
    "jobs:templates": frozenset({"estate-admin"}),
}


def allowed(role: str, permission: str) -> bool:
    return role in PERMISSIONS.get(permission, frozenset())
