"""Device search: found once per page, the same pages as the filters promise, odd text handled."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, event

from fleet.db import transaction
from fleet.devices.search import DeviceFilters, list_devices
from tests.devices.conftest import Fleet
from tests.devices.test_devices_list import SORTS, expected_order, walk

SEARCHES = {
    "mdi": lambda d: "MDI" in d["id"] or "MDI" in (d["location"] or ""),
    "ser01": lambda d: "SER01" in d["serial"].upper(),
    "mdi-2-1": lambda d: (d["location"] or "").startswith("MDI-2-1-"),
    "_4": lambda d: "_4" in d["serial"],
}


@pytest.mark.parametrize("sort", SORTS)
@pytest.mark.parametrize("q", SEARCHES)
def test_search_pages_walk_the_matches_once_in_the_sort_order(
    fleet: Fleet, q: str, sort: str
) -> None:
    matching = [d for d in fleet.devices if SEARCHES[q](d)]

    items, counts = walk(fleet, f"q={q}&sort={sort}&limit=6")

    assert [item["id"] for item in items] == expected_order(matching, sort)
    assert counts == {len(matching)}


def _statements_for(fleet: Fleet, url: str) -> tuple[list[str], dict[str, Any]]:
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", seen)
    try:
        body = fleet.api.get(url).json()
    finally:
        event.remove(Engine, "before_cursor_execute", seen)
    return statements, body


@pytest.mark.parametrize("sort", ["id", "-last_seen", "battery"])
def test_a_search_looks_its_text_up_once_for_both_count_and_page(fleet: Fleet, sort: str) -> None:
    statements, body = _statements_for(fleet, f"/api/v1/devices?q=mdi&limit=5&sort={sort}")

    lookups = [s for s in statements if "LIKE" in s.upper()]
    assert len(lookups) == 1
    # Counting and every part of the page come back from that one statement.
    assert "count(" in lookups[0].lower()
    assert len(body["items"]) == 5
    assert body["count"] == sum(1 for d in fleet.devices if SEARCHES["mdi"](d))


def test_a_search_past_the_cap_is_counted_to_it_and_pages_on(fleet: Fleet) -> None:
    ctx = fleet.api.ctx
    mdi = [d for d in fleet.devices if SEARCHES["mdi"](d)]
    with transaction(ctx.sessions) as session:
        first = list_devices(
            session=session, scope=None, filters=DeviceFilters(q="mdi"), limit=4, count_cap=10
        )
        exact = list_devices(
            session=session, scope=None, filters=DeviceFilters(q="mdi"), limit=4, count_cap=1000
        )
        assert first.last is not None
        beyond = list_devices(
            session=session,
            scope=None,
            filters=DeviceFilters(q="mdi"),
            limit=4,
            after=first.last,
            count_cap=10,
        )
        nothing = list_devices(
            session=session, scope=None, filters=DeviceFilters(q="zzz"), count_cap=10
        )
    ordered = expected_order(mdi, "id")
    assert (first.count, first.capped) == (10, True)
    assert (exact.count, exact.capped) == (len(mdi), False)
    assert [r.id for r in first.rows] == [r.id for r in exact.rows] == ordered[:4]
    assert [r.id for r in beyond.rows] == ordered[4:8]
    assert (beyond.count, beyond.capped) == (10, True)
    assert (nothing.rows, nothing.count, nothing.capped, nothing.last) == ([], 0, False, None)


ODD_TEXT = {
    "nul": "MDI\x00",
    "only nul": "\x00",
    "percent": "%",
    "underscore run": "___",
    "backslash": "\\",
    "backslash percent": "\\%",
    "slash": "/",
    "quote": "'; DROP TABLE device; --",
    "long within the limit": "M" * 100,
    "non-ascii": "MDI-ø-ß-😀",
}


@pytest.mark.parametrize("name", ODD_TEXT)
def test_odd_search_text_is_an_empty_result_never_a_server_error(fleet: Fleet, name: str) -> None:
    response = fleet.api.get("/api/v1/devices", params={"q": ODD_TEXT[name]})

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["items"], body["count"], body["count_capped"]) == ([], 0, False)


def test_an_underscore_is_matched_as_itself(fleet: Fleet) -> None:
    body = fleet.api.get("/api/v1/devices", params={"q": "_4"}).json()

    assert [d["serial"] for d in body["items"]] == ["Special-Serial_42"]


def test_search_text_over_the_limit_is_refused_naming_the_parameter(fleet: Fleet) -> None:
    response = fleet.api.get("/api/v1/devices", params={"q": "M" * 101})

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "query.q"
