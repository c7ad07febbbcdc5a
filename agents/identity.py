"""The device identity issued at enrolment, kept in <state-dir>/identity.json (mode 0600)."""

from __future__ import annotations

import base64
import binascii
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from agents.ed25519 import SignatureKey
from agents.protocol import DEVICE_ID_RE, load_public_key
from agents.state import StateError, read_json_file, write_file_atomically

IDENTITY_FILE = "identity.json"
MQTT_SCHEMES = {"mqtt": 1883, "mqtts": 8883}


class IdentityError(Exception):
    """An identity document that cannot be used; the message says what is wrong."""


def default_state_dir() -> Path:
    """$ESTATE_AGENT_STATE_DIR, else $XDG_STATE_HOME/estate-agent, else ~/.local/state/..."""
    explicit = os.environ.get("ESTATE_AGENT_STATE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return base / "estate-agent"


def parse_mqtt_url(url: str) -> tuple[str, int, bool]:
    """Split mqtt://host:port or mqtts://host:port into (host, port, use_tls)."""
    parts = urlsplit(url)
    if parts.scheme not in MQTT_SCHEMES or not parts.hostname:
        raise IdentityError(
            f"MQTT URL {url!r} must look like mqtt://host:port or mqtts://host:port"
        )
    try:
        port = parts.port or MQTT_SCHEMES[parts.scheme]
    except ValueError:
        raise IdentityError(f"MQTT URL {url!r} has an invalid port") from None
    return parts.hostname, port, parts.scheme == "mqtts"


def _text(doc: dict[str, Any], name: str, where: str) -> str:
    value = doc.get(name)
    if not isinstance(value, str) or not value:
        raise IdentityError(f"{where}: {name} must be a non-empty string")
    return value


@dataclass(frozen=True)
class Identity:
    """Who this device is, how it reaches the broker and which key signs its commands."""

    device_id: str
    prison_code: str
    mqtt_url: str
    mqtt_username: str
    mqtt_password: str
    signing_public_key: str
    config: dict[str, Any] = field(default_factory=dict)
    server: str = ""
    serial: str = ""
    kind: str = ""
    enrolled_at: float = 0.0

    @property
    def public_key(self) -> SignatureKey:
        return load_public_key(self.signing_public_key)

    @classmethod
    def from_document(cls, doc: dict[str, Any], *, where: str = "identity") -> Identity:
        """Validate an identity (as saved, or as the redeem endpoint answers) and build it."""
        device_id = _text(doc, "device_id", where)
        if not DEVICE_ID_RE.match(device_id):
            raise IdentityError(f"{where}: device_id {device_id!r} is not a valid device id")
        mqtt = doc.get("mqtt")
        if not isinstance(mqtt, dict):
            raise IdentityError(f"{where}: mqtt must be an object with url, username and password")
        mqtt_url = _text(mqtt, "url", f"{where} mqtt")
        parse_mqtt_url(mqtt_url)
        key_b64 = _text(doc, "signing_public_key", where)
        try:
            raw_key = base64.b64decode(key_b64, validate=True)
        except binascii.Error:
            raise IdentityError(f"{where}: signing_public_key is not base64") from None
        if len(raw_key) != 32:
            raise IdentityError(f"{where}: signing_public_key must be a 32-byte Ed25519 key")
        config = doc.get("config") or {}
        if not isinstance(config, dict):
            raise IdentityError(f"{where}: config must be an object")
        enrolled_at = doc.get("enrolled_at", 0.0)
        if isinstance(enrolled_at, bool) or not isinstance(enrolled_at, int | float):
            raise IdentityError(f"{where}: enrolled_at must be a number")
        return cls(
            device_id=device_id,
            prison_code=_text(doc, "prison_code", where),
            mqtt_url=mqtt_url,
            mqtt_username=_text(mqtt, "username", f"{where} mqtt"),
            mqtt_password=str(mqtt.get("password") or ""),
            signing_public_key=key_b64,
            config=config,
            server=str(doc.get("server") or ""),
            serial=str(doc.get("serial") or ""),
            kind=str(doc.get("kind") or ""),
            enrolled_at=float(enrolled_at),
        )

    def to_document(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "prison_code": self.prison_code,
            "mqtt": {
                "url": self.mqtt_url,
                "username": self.mqtt_username,
                "password": self.mqtt_password,
            },
            "signing_public_key": self.signing_public_key,
            "config": self.config,
            "server": self.server,
            "serial": self.serial,
            "kind": self.kind,
            "enrolled_at": self.enrolled_at or time.time(),
        }


def identity_path(state_dir: Path) -> Path:
    return state_dir / IDENTITY_FILE


def save_identity(state_dir: Path, identity: Identity) -> Path:
    """Write identity.json readable by the owner only (it holds the broker password)."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = identity_path(state_dir)
    doc = orjson.dumps(identity.to_document(), option=orjson.OPT_INDENT_2)
    write_file_atomically(path, doc, mode=0o600)
    return path


def load_identity(state_dir: Path) -> Identity | None:
    """The saved identity, None when this state directory has never been enrolled."""
    path = identity_path(state_dir)
    try:
        doc = read_json_file(path)
    except StateError as exc:
        raise IdentityError(str(exc)) from None
    if doc is None:
        return None
    return Identity.from_document(doc, where=str(path))
