"""GET /devices: filters, search, every sort walked page by page, caseloads, bad queries."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Engine, event

from tests.devices.conftest import Fleet

SORTS = ["id", "-id", "last_seen", "-last_seen", "battery", "-battery", "prison", "-prison",
         "kind", "-kind"]  # fmt: skip
SORT_FIELD = {"prison": "prison_code"}


def expected_order(devices: list[dict[str, Any]], sort: str) -> list[str]:
    """The order the API promises: by the key (nulls last either way), ties by id."""
    name, descending = sort.lstrip("-"), sort.startswith("-")
    key = SORT_FIELD.get(name, name)
    present = sorted(
        (d for d in devices if d[key] is not None),
        key=lambda d: (d[key], d["id"]),
        reverse=descending,
    )
    missing = sorted((d for d in devices if d[key] is None), key=lambda d: d["id"])
    if descending:
        missing.reverse()
    return [d["id"] for d in present + missing]


def walk(fleet: Fleet, query: str, **kw: Any) -> tuple[list[dict[str, Any]], set[int]]:
    """Every item of every page, and the counts the pages reported."""
    items: list[dict[str, Any]] = []
    counts: set[int] = set()
    cursor = None
    for _ in range(200):
        url = f"/api/v1/devices?{query}" + (f"&cursor={cursor}" if cursor else "")
        response = fleet.api.get(url, **kw)
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        counts.add(body["count"])
        cursor = body["next_cursor"]
        if cursor is None:
            return items, counts
    raise AssertionError("pagination did not end")


@pytest.mark.parametrize("sort", SORTS)
def test_every_sort_walks_the_whole_set_once_in_order(fleet: Fleet, sort: str) -> None:
    items, counts = walk(fleet, f"sort={sort}&limit=7")

    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids)) == len(fleet.devices)
    assert ids == expected_order(fleet.devices, sort)
    assert counts == {len(fleet.devices)}


def test_items_carry_state_and_location(fleet: Fleet) -> None:
    body = fleet.api.get("/api/v1/devices").json()
    assert len(body["items"]) == 50
    assert body["count"] == 140
    by_id = {d["id"]: d for d in fleet.devices}
    for item in body["items"]:
        seeded = by_id[item["id"]]
        assert item["serial"] == seeded["serial"]
        assert item["location"] == seeded["location"]
        assert item["online"] == seeded["online"]
        assert item["health"] == seeded["health"]
        assert item["battery"] == seeded["battery"]
        seen = item["last_seen"]
        assert (datetime.fromisoformat(seen) if seen else None) == seeded["last_seen"]
        if seeded["lifecycle"] == "registered":
            assert (item["state"], item["agent_version"]) == ("unknown", None)
        else:
            assert (item["agent_version"], item["config_version"]) == ("1.2.3", 4)


FILTERS = {
    "prison=lei": lambda d: d["prison_code"] == "LEI",
    "prison=MDI&prison=LEI": lambda d: True,
    "kind=tablet": lambda d: d["kind"] == "tablet",
    "lifecycle=registered": lambda d: d["lifecycle"] == "registered",
    "online=true": lambda d: d["online"],
    "online=false": lambda d: not d["online"],
    "health=ok": lambda d: d["health"] == "ok",
    "health=unknown": lambda d: d["health"] == "unknown",
    "wing=MDI-2": lambda d: (d["location"] or "").startswith("MDI-2-"),
    "landing=mdi-1-2": lambda d: (d["location"] or "").startswith("MDI-1-2-"),
    "wing=MDI-1&landing=MDI-1-1&kind=in_cell_phone": lambda d: (
        (d["location"] or "").startswith("MDI-1-1-") and d["kind"] == "in_cell_phone"
    ),
    "q=special-serial": lambda d: d["serial"] == "Special-Serial_42",
    "q=_4": lambda d: d["serial"] == "Special-Serial_42",
    "q=ser001": lambda d: d["serial"].startswith("SER001"),
    "q=mdi-2-1-00": lambda d: (d["location"] or "").startswith("MDI-2-1-"),
    "q=lei-tab": lambda d: d["id"].startswith("LEI-TAB-"),
    "online=true&health=warning&prison=MDI": lambda d: (
        d["online"] and d["health"] == "warning" and d["prison_code"] == "MDI"
    ),
}


@pytest.mark.parametrize("query", FILTERS)
def test_filters_and_search_match_exactly(fleet: Fleet, query: str) -> None:
    expected = {d["id"] for d in fleet.devices if FILTERS[query](d)}
    assert expected, "each filter should select something"

    items, counts = walk(fleet, f"{query}&limit=9&sort=-battery")

    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids))
    assert set(ids) == expected
    assert counts == {len(expected)}


def test_a_caseload_lists_only_its_prisons(fleet: Fleet) -> None:
    items, counts = walk(fleet, "limit=30&sort=-last_seen", role="viewer", prisons=["MDI"])
    mdi = [d for d in fleet.devices if d["prison_code"] == "MDI"]
    assert [i["id"] for i in items] == expected_order(mdi, "-last_seen")
    assert counts == {100}

    other = fleet.api.get("/api/v1/devices?prison=LEI", role="viewer", prisons=["MDI"]).json()
    assert (other["count"], other["items"]) == (0, [])
    wing = fleet.api.get("/api/v1/devices?wing=LEI-1", role="viewer", prisons=["MDI"])
    assert wing.status_code == 422
    assert wing.json()["errors"][0]["field"] == "query.wing"


def _cursor(values: list[Any]) -> str:
    import orjson

    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


BAD_QUERIES = {
    "prison=XXX": ("query.prison", "unknown prison 'XXX'"),
    "sort=colour": ("query.sort", "sort"),
    "limit=0": ("query.limit", "greater than or equal to 1"),
    "limit=501": ("query.limit", "less than or equal to 500"),
    "online=maybe": ("query.online", "boolean"),
    "health=poorly": ("query.health", "'ok', 'warning', 'critical' or 'unknown'"),
    "landing=MDI-9-9": ("query.landing", "no location 'MDI-9-9'"),
    "cursor=%25%25garbage": ("query.cursor", "not a cursor this API gave out"),
    f"cursor={_cursor(['id', 'x'])}": ("query.cursor", "not a cursor this API gave out"),
    f"sort=battery&cursor={_cursor(['battery', 'lots', 'MDI-1'])}": (
        "query.cursor",
        "not a cursor this API gave out",
    ),
    f"sort=-id&cursor={_cursor(['id', 'MDI', 'MDI'])}": ("query.cursor", "made for sort=id"),
}


@pytest.mark.parametrize("query", BAD_QUERIES)
def test_bad_queries_are_422_naming_the_parameter(fleet: Fleet, query: str) -> None:
    response = fleet.api.get(f"/api/v1/devices?{query}")

    assert response.status_code == 422, response.text
    field, words = BAD_QUERIES[query]
    body = response.json()
    assert body["errors"][0]["field"] == field
    assert words in body["detail"]


@pytest.mark.parametrize("sort", ["id", "-last_seen"])
def test_a_page_costs_the_same_queries_whatever_its_size(fleet: Fleet, sort: str) -> None:
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    try:
        fleet.api.get(f"/api/v1/devices?limit=2&sort={sort}")
        small = len(statements)
        statements.clear()
        big = fleet.api.get(f"/api/v1/devices?limit=140&sort={sort}")
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    assert len(big.json()["items"]) == 140
    # A key that can be null is read in two parts (with a key, then without): one more query.
    assert len(statements) == small + (1 if sort == "-last_seen" else 0)
    assert len(statements) <= 8
