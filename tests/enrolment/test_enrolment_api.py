"""One-time, expiring enrolment tokens and their redemption through the real API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from fleet.audit.models import AuditEvent
from fleet.cli import main
from fleet.context import Context
from fleet.db import transaction, utcnow
from fleet.devices.models import Device, EnrolmentToken
from tests.estate.factories import Api, api_for, seed_locations

REDEEM = "/api/v1/enrolments/redeem"


@pytest.fixture
def api(pg_context: Context) -> Iterator[Api]:
    seed_locations(pg_context)
    with api_for(pg_context) as client:
        yield client


def _token(api: Api, **body: object) -> str:
    resp = api.post("/api/v1/enrolments", json={"prison_code": "MDI", "kind": "tablet", **body})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["tokens"][0])


def test_redeem_gives_identity_once(api: Api) -> None:
    token = _token(api, location="MDI-1-1-001")
    first = api.client.post(REDEEM, json={"token": token, "serial": "TAB-0001", "hostname": "t1"})
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["device_id"].startswith("MDI-TAB-")
    assert body["location"] == "MDI-1-1-001"
    assert body["mqtt"]["username"] == body["device_id"]
    assert len(body["mqtt"]["password"]) >= 16
    assert "@" not in body["mqtt"]["url"]  # never the control plane's own broker login
    assert len(body["signing_public_key"]) == 44
    assert body["config"]["health_interval_s"] > 0

    again = api.client.post(REDEEM, json={"token": token, "serial": "TAB-0002"})
    assert again.status_code == 409
    assert "already used" in again.json()["detail"]
    with api.ctx.sessions() as session:
        device = session.get(Device, body["device_id"])
        assert device is not None
        assert device.lifecycle == "enrolled"
        actions = list(session.scalars(select(AuditEvent.action)))
        assert "enrolment.tokens_created" in actions
        assert "device.enrolled" in actions


def test_expired_token_answers_410_and_unknown_404(api: Api) -> None:
    token = _token(api)
    with transaction(api.ctx.sessions) as session:
        session.execute(update(EnrolmentToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    expired = api.client.post(REDEEM, json={"token": token, "serial": "TAB-0003"})
    assert expired.status_code == 410
    assert "expired" in expired.json()["detail"]
    unknown = api.client.post(REDEEM, json={"token": "enr_not-a-real-token", "serial": "X1"})
    assert unknown.status_code == 404


def test_serial_already_enrolled_is_409_and_token_stays_usable(api: Api) -> None:
    first = _token(api)
    assert api.client.post(REDEEM, json={"token": first, "serial": "DUP-1"}).status_code == 201
    second = _token(api)
    clash = api.client.post(REDEEM, json={"token": second, "serial": "DUP-1"})
    assert clash.status_code == 409
    assert "retire that device first" in clash.json()["detail"]
    # The refusal did not burn the token: it still works for the right hardware.
    assert api.client.post(REDEEM, json={"token": second, "serial": "DUP-2"}).status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"serial": "X"}, "token"),
        ({"token": "enr_abcdefgh", "serial": "bad serial with spaces"}, "serial"),
        ({"token": 12345678, "serial": "X"}, "token"),
        ({"token": "enr_abcdefgh", "serial": "X" * 101}, "serial"),
    ],
)
def test_redeem_garbage_is_422_with_field_path(api: Api, body: dict, field: str) -> None:
    resp = api.client.post(REDEEM, json=body)
    assert resp.status_code == 422
    errors = resp.json()["errors"]
    assert errors[0]["field"] == field
    assert errors[0]["message"].startswith(field)


def test_not_json_at_all_is_422_with_a_sentence(api: Api) -> None:
    resp = api.client.post(
        REDEEM, content=b"\x00\xffnot json", headers={"content-type": "application/json"}
    )
    assert resp.status_code == 422
    assert "not valid JSON" in resp.json()["detail"]


def test_creating_tokens_needs_permission_and_caseload(api: Api) -> None:
    viewer = api.post(
        "/api/v1/enrolments", role="viewer", json={"prison_code": "MDI", "kind": "tablet"}
    )
    assert viewer.status_code == 403
    outside = api.post(
        "/api/v1/enrolments",
        role="it-support",
        prisons=["LEI"],
        json={"prison_code": "MDI", "kind": "tablet"},
    )
    assert outside.status_code == 404
    unknown_kind = api.post("/api/v1/enrolments", json={"prison_code": "MDI", "kind": "toaster"})
    assert unknown_kind.status_code == 422
    assert unknown_kind.json()["errors"][0]["field"] == "kind"
    bad_location = api.post(
        "/api/v1/enrolments", json={"prison_code": "MDI", "kind": "tablet", "location": "LEI-1"}
    )
    assert bad_location.status_code == 422
    assert "no location" in bad_location.json()["detail"]
    anonymous = api.client.post("/api/v1/enrolments", json={"prison_code": "MDI", "kind": "tablet"})
    assert anonymous.status_code == 401


def test_cli_enrol_prints_tokens_that_redeem(api: Api) -> None:
    result = CliRunner().invoke(
        main,
        ["devices", "enrol", "--prison", "mdi", "--kind", "laptop", "--count", "2"],
        env={"ESTATE_DATABASE_URL": api.ctx.settings.effective_database_url},
    )
    assert result.exit_code == 0, result.output
    tokens = result.stdout.strip().splitlines()
    assert len(tokens) == 2
    for n, token in enumerate(tokens):
        resp = api.client.post(REDEEM, json={"token": token, "serial": f"LAP-{n}"})
        assert resp.status_code == 201
        assert resp.json()["device_id"].startswith("MDI-LAP-")
    bad = CliRunner().invoke(
        main,
        ["devices", "enrol", "--prison", "ZZZ", "--kind", "laptop"],
        env={"ESTATE_DATABASE_URL": api.ctx.settings.effective_database_url},
    )
    assert bad.exit_code != 0
    assert "unknown prison" in bad.output
