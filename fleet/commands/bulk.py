"""Bulk commands: the devices a filter matches, and the signed token that confirms sending."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any

import orjson

from agents.protocol import canonical

CONFIRMATION_TTL_S = 120
MAX_BULK_DEVICES = 1000


class ConfirmationRefused(Exception):
    """The confirmation token cannot be used; the message says what to do instead."""


@dataclass(frozen=True)
class Confirmation:
    """What a person saw before confirming: who, which action and filter, how many devices."""

    user_id: int
    action: str
    params: dict[str, Any]
    filter: dict[str, Any]
    matched: int

    def binding(self) -> dict[str, Any]:
        return {
            "u": self.user_id,
            "a": self.action,
            "p": self.params,
            "f": self.filter,
            "n": self.matched,
        }


def _mac(secret: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), b"estate-bulk-command\0" + body, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def issue_token(secret: str, confirmation: Confirmation, *, now: float | None = None) -> str:
    """A token valid for CONFIRMATION_TTL_S, bound to everything in `confirmation`."""
    now = time.time() if now is None else now
    body = canonical({**confirmation.binding(), "exp": int(now + CONFIRMATION_TTL_S)})
    encoded = base64.urlsafe_b64encode(body).decode().rstrip("=")
    return f"{encoded}.{_mac(secret, body)}"


def check_token(
    secret: str, token: str, request: Confirmation, *, now: float | None = None
) -> None:
    """Raise ConfirmationRefused unless `token` confirms exactly this request, in time."""
    encoded, _, mac = token.partition(".")
    try:
        body = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        doc = orjson.loads(body)
    except (ValueError, orjson.JSONDecodeError):
        raise ConfirmationRefused("the confirmation token is damaged; ask for a new one") from None
    if not isinstance(doc, dict) or not hmac.compare_digest(mac, _mac(secret, body)):
        raise ConfirmationRefused("the confirmation token is not valid; ask for a new one")
    now = time.time() if now is None else now
    exp = doc.pop("exp", 0)
    if not isinstance(exp, int) or exp < now:
        raise ConfirmationRefused("the confirmation token has expired; ask for a new one")
    confirmed = {k: v for k, v in doc.items() if k != "n"}
    asked = {k: v for k, v in request.binding().items() if k != "n"}
    if confirmed != asked:
        raise ConfirmationRefused(
            "the confirmation token was issued for another action, filter or user; "
            "ask for a new one"
        )
    if doc.get("n") != request.matched:
        raise ConfirmationRefused(
            f"the filter now matches {request.matched} device(s), not the {doc.get('n')} "
            "you confirmed; ask again"
        )
