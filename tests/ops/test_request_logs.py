"""Request ids reach the response header and every JSON log line of the request."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import httpx
import pytest

from fleet.context import Context
from fleet.ops.logging import JsonFormatter, log_context
from tests.services.api_server import running_api

REQUEST_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")


@pytest.fixture
def api(pg_context: Context) -> Iterator[str]:
    with running_api(pg_context.settings) as base:
        yield base


@pytest.fixture
def access_lines() -> Iterator[io.StringIO]:
    """The server's access log, formatted as JSON while the request is being answered."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("uvicorn.access")
    level = access.level
    access.setLevel(logging.INFO)
    access.addHandler(handler)
    yield stream
    access.removeHandler(handler)
    access.setLevel(level)


def _json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_access_log_line_is_json_carrying_the_request_id(
    api: str, access_lines: io.StringIO
) -> None:
    response = httpx.get(f"{api}/api/v1/prisons", timeout=10)
    request_id = response.headers["X-Request-ID"]
    assert REQUEST_ID.fullmatch(request_id)
    lines = [line for line in _json_lines(access_lines) if "/api/v1/prisons" in str(line)]
    assert len(lines) == 1, access_lines.getvalue()
    line = lines[0]
    assert line["request_id"] == request_id
    assert line["logger"] == "uvicorn.access"
    assert line["level"] == "INFO"
    assert isinstance(line["process"], int)
    assert str(line["ts"]).endswith("+00:00")


def test_sane_request_id_is_echoed_and_logged(api: str, access_lines: io.StringIO) -> None:
    given = "edge-7f3a-0001"
    response = httpx.get(f"{api}/healthz", headers={"X-Request-ID": given}, timeout=10)
    assert response.headers["X-Request-ID"] == given
    assert any(line.get("request_id") == given for line in _json_lines(access_lines))


@pytest.mark.parametrize(
    "garbage",
    ["has spaces in it", "semi;colon", "a" * 65, "", "<script>alert(1)</script>", "ünïcode"],
    ids=["spaces", "punctuation", "too-long", "empty", "markup", "non-ascii"],
)
def test_unsafe_request_id_is_replaced(api: str, garbage: str) -> None:
    response = httpx.get(
        f"{api}/healthz", headers={b"X-Request-ID": garbage.encode("utf-8")}, timeout=10
    )
    replaced = response.headers["X-Request-ID"]
    assert replaced != garbage
    assert REQUEST_ID.fullmatch(replaced)


def test_each_request_gets_its_own_id(api: str) -> None:
    ids = {httpx.get(f"{api}/healthz", timeout=10).headers["X-Request-ID"] for _ in range(5)}
    assert len(ids) == 5


def test_json_line_takes_fields_from_extra_and_context() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.ops.json")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        with log_context(job_id="job-1", task_name="estate.example"):
            logger.info("device %s checked", "MDI-T-1", extra={"device_id": "MDI-T-1"})
        logger.info("outside any job")
        try:
            raise ValueError("broken report")
        except ValueError:
            logger.exception("report refused")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    inside, outside, failed = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["message"] == "device MDI-T-1 checked"
    assert (inside["job_id"], inside["task_name"], inside["device_id"]) == (
        "job-1",
        "estate.example",
        "MDI-T-1",
    )
    assert "job_id" not in outside
    assert failed["level"] == "ERROR"
    assert "ValueError: broken report" in failed["exception"]


def test_unknown_context_field_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log context fields"), log_context(user="x"):
        pass
