"""Who may publish and subscribe to what: the dynamic security roles, and the commands that
bring the broker's roles and clients into line with them.

Mosquitto 2.0.11 does not substitute %u in role ACLs, so every device gets its own role,
`device-<id>`, listing its own topics explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agents.protocol import PREFIX, device_topics

INGEST_ROLE = "estate-ingest"
CONTROL_ROLE = "estate-control"
DEVICE_ROLE_PREFIX = "device-"

# Channels ingest consumes, from every device.
INGEST_CHANNELS = ("health", "state", "cmd/reply", "config/reported")
# Channels the control plane sends to devices, and the answers it reads back.
CONTROL_SEND_CHANNELS = ("cmd", "config")
CONTROL_READ_CHANNELS = ("cmd/reply", "config/reported")


@dataclass(frozen=True, slots=True)
class Acl:
    acltype: str
    topic: str
    allow: bool = True

    def as_json(self) -> dict[str, Any]:
        return {"acltype": self.acltype, "topic": self.topic, "allow": self.allow}


def device_role_name(device_id: str) -> str:
    return DEVICE_ROLE_PREFIX + device_id


def device_acls(device_id: str) -> list[Acl]:
    """Publish only under its own subtree; subscribe to and receive only its own cmd/config."""
    topics = device_topics(device_id)
    acls = [Acl("publishClientSend", t) for t in topics["publish"]]
    for t in topics["subscribe"]:
        acls += [Acl("subscribePattern", t), Acl("publishClientReceive", t)]
    return acls


def _readable(channel: str) -> list[Acl]:
    """Subscribe and receive a channel of every device, directly or as a shared subscription."""
    pattern = f"{PREFIX}/+/{channel}"
    return [
        Acl("subscribePattern", pattern),
        Acl("subscribePattern", f"$share/+/{pattern}"),
        Acl("publishClientReceive", pattern),
    ]


def ingest_acls() -> list[Acl]:
    return [acl for channel in INGEST_CHANNELS for acl in _readable(channel)]


def control_acls() -> list[Acl]:
    acls = [Acl("publishClientSend", f"{PREFIX}/+/{c}") for c in CONTROL_SEND_CHANNELS]
    return acls + [acl for channel in CONTROL_READ_CHANNELS for acl in _readable(channel)]


def role_changes(
    rolename: str, acls: list[Acl], textname: str, existing: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """Commands that create the role, or bring an existing one's ACLs to exactly `acls`."""
    if existing is None:
        return [
            {
                "command": "createRole",
                "rolename": rolename,
                "textname": textname,
                "acls": [acl.as_json() for acl in acls],
            }
        ]
    current = {Acl(a["acltype"], a["topic"], bool(a.get("allow"))) for a in existing["acls"]}
    commands = [
        {"command": "removeRoleACL", "rolename": rolename, "acltype": a.acltype, "topic": a.topic}
        for a in current - set(acls)
    ]
    commands += [
        {"command": "addRoleACL", "rolename": rolename, **acl.as_json()}
        for acl in acls
        if acl not in current
    ]
    return commands


def client_changes(
    username: str, password: str, roles: list[str], textname: str, existing: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """Commands that create the client, or reset its password and add roles it lacks."""
    if existing is None:
        return [
            {
                "command": "createClient",
                "username": username,
                "password": password,
                "textname": textname,
                "roles": [{"rolename": r} for r in roles],
            }
        ]
    held = {r["rolename"] for r in existing.get("roles", [])}
    commands = [{"command": "setClientPassword", "username": username, "password": password}]
    # Only roles it lacks: re-adding a held role is answered with "Internal error".
    commands += [
        {"command": "addClientRole", "username": username, "rolename": r}
        for r in roles
        if r not in held
    ]
    return commands
