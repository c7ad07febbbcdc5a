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
}


def allowed(role: str, permission: str) -> bool:
    return role in PERMISSIONS.get(permission, frozenset())
