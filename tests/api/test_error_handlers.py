"""Error handlers: a body that could not be decoded is a 422 (other 400s stay 400), and a value
the database refuses is a 422 saying what to change."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import psycopg.errors
import pytest
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException
from starlette.requests import Request

from fleet.api.errors import bad_request_handler, data_error_handler


def _run(handler_call: Coroutine[Any, Any, Any]) -> Any:
    """Run a handler on its own thread: a browser test's event loop may own this one."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, handler_call).result()


def _request() -> Request:
    return Request({"type": "http", "method": "POST", "path": "/api/v1/x", "headers": []})


def _raised(exc: HTTPException, cause: BaseException | None) -> HTTPException:
    try:
        raise exc from cause
    except HTTPException as raised:
        return raised


def test_a_400_not_caused_by_the_body_stays_400_with_its_detail() -> None:
    exc = _raised(HTTPException(400, "the link has expired; open it again"), None)
    resp = _run(bad_request_handler(_request(), exc))
    assert resp.status_code == 400
    assert json.loads(bytes(resp.body)) == {"detail": "the link has expired; open it again"}


def test_a_400_from_a_body_that_would_not_decode_becomes_422() -> None:
    cause = UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")
    exc = _raised(HTTPException(400, "There was an error parsing the body"), cause)
    resp = _run(bad_request_handler(_request(), exc))
    assert resp.status_code == 422
    body = json.loads(bytes(resp.body))
    assert body["errors"] == [
        {"field": "body", "loc": ["body"], "message": body["detail"], "type": "json_invalid"}
    ]
    assert "UTF-8" in body["detail"]


@pytest.mark.parametrize(
    ("refusal", "advice"),
    [
        (psycopg.errors.StringDataRightTruncation("value too long"), "shorten it"),
        (psycopg.errors.NumericValueOutOfRange("integer out of range"), "too large or too small"),
        (psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"), "NUL"),
    ],
)
def test_a_value_the_database_refuses_is_422_saying_what_to_change(
    refusal: psycopg.Error, advice: str
) -> None:
    exc = DataError("UPDATE t SET v = %s", ("x",), refusal)
    resp = _run(data_error_handler(_request(), exc))
    assert resp.status_code == 422
    body = json.loads(bytes(resp.body))
    assert advice in body["detail"]
    assert body["errors"][0]["message"] == body["detail"]
