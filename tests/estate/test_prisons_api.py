"""Prisons with their counts, limited to the caller's caseload."""

from __future__ import annotations

from fleet.db import transaction
from tests.estate.factories import Api, add_device


def _devices(api: Api) -> None:
    with transaction(api.ctx.sessions) as session:
        add_device(session, prison="MDI", location="MDI-1-1-001", online=True, health="ok")
        add_device(session, prison="MDI", location="MDI-1-2-001", online=True, health="warning")
        add_device(session, prison="MDI", location="MDI-2-1-003", online=False)
        add_device(session, prison="MDI", location="MDI-2-1-002", lifecycle="registered")
        add_device(session, prison="MDI", location="MDI-1-1-002", lifecycle="retired", online=False)
        add_device(session, prison="LEI", location="LEI-1-1-001", online=True, health="ok")


def test_list_counts_locations_and_devices_per_prison(api: Api) -> None:
    _devices(api)

    response = api.get("/api/v1/prisons")

    assert response.status_code == 200
    body = response.json()
    by_code = {p["code"]: p for p in body["items"]}
    assert body["count"] == len(body["items"]) > 100
    assert by_code["MDI"]["name"]
    assert by_code["MDI"]["counts"] == {
        "locations": 2 + 4 + 12,
        "devices_expected": 12,
        "devices_enrolled": 3,
        "devices_online": 2,
        "devices_healthy": 1,
    }
    assert by_code["LEI"]["counts"]["devices_expected"] == 2
    assert by_code["LEI"]["counts"]["devices_healthy"] == 1
    assert by_code["BMI"]["counts"] == {
        "locations": 0,
        "devices_expected": 0,
        "devices_enrolled": 0,
        "devices_online": 0,
        "devices_healthy": 0,
    }


def test_detail_summarises_each_wing(api: Api) -> None:
    _devices(api)

    response = api.get("/api/v1/prisons/mdi")

    assert response.status_code == 200
    body = response.json()
    assert body["code"] == "MDI"
    assert body["counts"]["devices_enrolled"] == 3
    assert body["wings"] == [
        {
            "path": "MDI-1",
            "name": "Wing 1",
            "landings": 2,
            "cells": 6,
            "devices_enrolled": 2,
            "devices_online": 2,
        },
        {
            "path": "MDI-2",
            "name": "Wing 2",
            "landings": 2,
            "cells": 6,
            "devices_enrolled": 1,
            "devices_online": 0,
        },
    ]


def test_caseload_sees_only_its_prisons(api: Api) -> None:
    listed = api.get("/api/v1/prisons", role="viewer", prisons=["MDI"]).json()
    assert [p["code"] for p in listed["items"]] == ["MDI"]
    assert listed["count"] == 1

    assert api.get("/api/v1/prisons/MDI", role="viewer", prisons=["MDI"]).status_code == 200
    hidden = api.get("/api/v1/prisons/LEI", role="viewer", prisons=["MDI"])
    assert hidden.status_code == 404
    assert hidden.json() == {"detail": "prison not found"}


def test_unknown_prison_is_404_and_anonymous_is_401(api: Api) -> None:
    assert api.get("/api/v1/prisons/XXX").status_code == 404
    anonymous = api.client.get("/api/v1/prisons")
    assert anonymous.status_code == 401
    assert "Bearer" in anonymous.json()["detail"]
