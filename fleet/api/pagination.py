"""Opaque keyset cursors shared by every paginated list in the API."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from fleet.api.errors import invalid

# Lists count their matches up to here and no further: an exact count of a large result
# reads every matching row on each request, while people only need to know "more than this".
COUNT_CAP = 10_000


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


def bounded_count(session: Session, matching: Select[Any], cap: int | None) -> tuple[int, bool]:
    """How many rows `matching` selects, reading no more than cap + 1; (cap, True) past the cap."""
    if cap is None:
        return session.scalar(select(func.count()).select_from(matching.subquery())) or 0, False
    found = session.scalar(select(func.count()).select_from(matching.limit(cap + 1).subquery()))
    return (cap, True) if (found or 0) > cap else (found or 0, False)
