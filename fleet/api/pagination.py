"""Opaque keyset cursors shared by every paginated list in the API."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from fleet.api.errors import invalid


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


BAD_CURSOR = "is not a cursor this API gave out; start again without it"


def decode_cursor(cursor: str, size: int) -> list[Any]:
    """The values an earlier page encoded; a tampered or foreign cursor is a 422."""
    try:
        values = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise invalid(("query", "cursor"), BAD_CURSOR) from exc
    if not isinstance(values, list) or len(values) != size:
        raise invalid(("query", "cursor"), BAD_CURSOR)
    return values
