"""Inputs the API fuzzing found, kept as regression tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fleet.context import Context
from fleet.db import transaction
from tests.estate.factories import Api, add_device, api_for, seed_locations


@pytest.fixture
def api(pg_context: Context) -> Iterator[Api]:
    seed_locations(pg_context)
    with api_for(pg_context) as client:
        yield client


def _device(api: Api) -> str:
    with transaction(api.ctx.sessions) as session:
        return add_device(session, prison="MDI", location="MDI-1-1-001", online=True).id


def test_move_to_a_location_with_control_characters_is_422_not_500(api: Api) -> None:
    device_id = _device(api)
    # Escaped in the JSON itself, as the fuzzer sent it: a lone surrogate and a NUL.
    resp = api.post(
        f"/api/v1/devices/{device_id}/move",
        content=rb'{"location": "\u008d\ud88b\u0000t/1*"}',
        headers={"content-type": "application/json"},
    )
    assert resp.status_code == 422
    assert resp.json()["errors"][0]["field"] == "location"


def test_nul_in_free_text_is_422_and_nothing_changes(api: Api) -> None:
    device_id = _device(api)
    resp = api.post(f"/api/v1/devices/{device_id}/retire", json={"reason": "lost\x00 in cell"})
    assert resp.status_code == 422
    assert "NUL" in resp.json()["detail"]
    after = api.get(f"/api/v1/devices/{device_id}")
    assert after.json()["lifecycle"] == "enrolled"


def test_enrolment_refusals_use_the_validation_shape(api: Api) -> None:
    resp = api.post(
        "/api/v1/enrolments", json={"prison_code": "MDI", "kind": "tablet", "location": "LEI-1"}
    )
    assert resp.status_code == 422
    body = resp.json()
    assert body["errors"][0]["message"]
    assert "no location" in body["detail"]
