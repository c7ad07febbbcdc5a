"""Refusals (and other statuses) the API really sends are the ones its OpenAPI document lists,
in the shape it lists."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from fleet.db import transaction
from fleet.estate.models import Location
from tests.estate.factories import Api, add_device, api_for, seed_locations
from tests.services.postgres import create_database, drop_database, migrated_context


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    # One server for the module: each test makes what it needs and checks only that.
    url = create_database()
    ctx = migrated_context(url, data_dir=tmp_path_factory.mktemp("api"))
    try:
        seed_locations(ctx)
        with api_for(ctx) as client:
            yield client
    finally:
        ctx.close()
        drop_database(url)


@pytest.fixture(scope="module")
def document(api: Api) -> dict[str, Any]:
    resp = api.client.get("/openapi.json")
    assert resp.status_code == 200
    body: dict[str, Any] = resp.json()
    return body


def _conforms(document: dict[str, Any], path: str, method: str, resp: httpx.Response) -> None:
    """The response's status is documented for this operation and its body fits the schema."""
    responses = document["paths"][path][method]["responses"]
    assert str(resp.status_code) in responses, (path, method, resp.status_code, sorted(responses))
    schema = responses[str(resp.status_code)]["content"]["application/json"]["schema"]
    validator = Draft202012Validator({**schema, "components": document["components"]})
    validator.validate(resp.json())


def _location_count(api: Api) -> int:
    with transaction(api.ctx.sessions) as session:
        return session.query(Location).count()


def test_a_body_that_is_not_utf8_is_422_with_what_to_do_and_nothing_is_stored(
    api: Api, document: dict[str, Any]
) -> None:
    before = _location_count(api)
    resp = api.post(
        "/api/v1/locations",
        content=b'{"prison_code": "MDI", "path": "MDI-1-CAFE", "name": "Caf\xe9", "kind": "room"}',
        headers={"content-type": "application/json"},
    )
    assert resp.status_code == 422
    body = resp.json()
    assert body["errors"][0]["field"] == "body"
    assert "UTF-8" in body["detail"]
    _conforms(document, "/api/v1/locations", "post", resp)
    assert _location_count(api) == before


def test_a_body_that_is_not_utf8_leaves_the_device_as_it_was(api: Api) -> None:
    with transaction(api.ctx.sessions) as session:
        device_id = add_device(session, prison="MDI", location="MDI-1-1-001", online=True).id
    resp = api.post(
        f"/api/v1/devices/{device_id}/retire",
        content=b'{"reason": "lost \xff in the cell"}',
        headers={"content-type": "application/json"},
    )
    assert resp.status_code == 422
    assert resp.json()["errors"][0]["type"] == "json_invalid"
    assert api.get(f"/api/v1/devices/{device_id}").json()["lifecycle"] == "enrolled"


def test_json_nested_too_deeply_to_read_is_422_not_400(api: Api) -> None:
    resp = api.post(
        "/api/v1/alerts/acknowledge",
        content=b"[" * 100_000,
        headers={"content-type": "application/json"},
    )
    assert resp.status_code == 422
    assert "nested too deeply" in resp.json()["detail"]


def test_a_form_that_cannot_be_parsed_is_422_naming_the_form(api: Api) -> None:
    resp = api.post(
        "/api/v1/faults/MDI-F-1/attachments",
        content=b"--x\r\nContent-Disposition: form-data\r\n\r\nno name\r\n--x--\r\n",
        headers={"content-type": "multipart/form-data; boundary=x"},
    )
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["errors"][0]["type"] == "form_invalid"
    assert "multipart/form-data" in body["detail"]


def test_a_token_that_is_not_valid_is_a_documented_401(api: Api, document: dict[str, Any]) -> None:
    resp = api.client.get("/api/v1/devices", headers={"Authorization": "Bearer not-a-token"})
    assert resp.status_code == 401
    _conforms(document, "/api/v1/devices", "get", resp)


def test_a_role_refused_is_a_documented_403(api: Api, document: dict[str, Any]) -> None:
    resp = api.post(
        "/api/v1/locations",
        role="viewer",
        json={"prison_code": "MDI", "path": "MDI-1-LIB", "name": "Library", "kind": "room"},
    )
    assert resp.status_code == 403
    _conforms(document, "/api/v1/locations", "post", resp)


def test_an_unknown_id_in_the_path_is_a_documented_404(api: Api, document: dict[str, Any]) -> None:
    resp = api.get("/api/v1/devices/MDI-ICP-000000")
    assert resp.status_code == 404
    _conforms(document, "/api/v1/devices/{device_id}", "get", resp)


def test_a_declared_conflict_is_documented_with_its_reason(
    api: Api, document: dict[str, Any]
) -> None:
    resp = api.post(
        "/api/v1/locations",
        json={"prison_code": "MDI", "path": "MDI-1", "name": "Wing 1", "kind": "wing"},
    )
    assert resp.status_code == 409, resp.text
    _conforms(document, "/api/v1/locations", "post", resp)
    documented = document["paths"]["/api/v1/locations"]["post"]["responses"]["409"]
    assert documented["description"] == "A location with that path already exists"


def test_a_repeated_fault_report_answers_a_documented_200_with_the_first_fault(
    api: Api, document: dict[str, Any]
) -> None:
    report = {
        "category": "other",
        "description": "Door",
        "location": "MDI-1-1-001",
        "priority": "P1",
    }
    headers = {"Idempotency-Key": "form-7f3a"}
    first = api.post("/api/v1/faults", json=report, headers=headers)
    again = api.post("/api/v1/faults", json=report, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["reference"] == first.json()["reference"]
    _conforms(document, "/api/v1/faults", "post", again)


def test_every_operation_lists_the_refusals_it_can_give(document: dict[str, Any]) -> None:
    problem = {"$ref": "#/components/schemas/Problem"}
    checked = 0
    for path, operations in document["paths"].items():
        for operation in operations.values():
            responses = operation["responses"]
            if path.startswith("/api/v1/") and path != "/api/v1/enrolments/redeem":
                for code in ("401", "403"):  # every API route but the agent's own needs a user
                    assert responses[code]["content"]["application/json"]["schema"] == problem
            if any(p["in"] == "path" for p in operation.get("parameters", [])):
                assert responses["404"]["content"]["application/json"]["schema"] == problem
            if operation.get("parameters") or operation.get("requestBody"):
                schema = responses["422"]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/HTTPValidationError"}
            for code, response in responses.items():
                if int(code) >= 400:
                    assert response["content"]["application/json"]["schema"], (path, code)
                    assert response["description"] != "Additional Response", (path, code)
            checked += 1
    assert checked > 50
