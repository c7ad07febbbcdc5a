"""Bulk commands: a preview with a confirmation token, then queueing on every matched device."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from fleet.commands import bulk
from fleet.context import Context
from fleet.db import transaction
from tests.estate.factories import Api, add_device, api_for
from tests.services.api_server import free_port
from tests.services.postgres import migrated_context


@pytest.fixture
def api(pg_url: str, tmp_path: Path) -> Iterator[Api]:
    ctx = migrated_context(pg_url, data_dir=tmp_path, mqtt_url=f"mqtt://127.0.0.1:{free_port()}")
    try:
        with api_for(ctx) as client:
            yield client
    finally:
        ctx.close()


def _estate(ctx: Context) -> dict[str, list[str]]:
    with transaction(ctx.sessions) as session:
        laptops = [add_device(session, prison="MDI", kind="laptop").id for _ in range(3)]
        add_device(session, prison="MDI", kind="tablet")
        add_device(session, prison="MDI", kind="laptop", lifecycle="retired")
        add_device(session, prison="LEI", kind="laptop")
    return {"laptops": laptops}


MDI_LAPTOPS = {"prison": ["MDI"], "kind": "laptop"}


def test_preview_then_confirm_queues_the_matched_enrolled_devices(api: Api) -> None:
    laptops = _estate(api.ctx)["laptops"]
    preview = api.post("/api/v1/commands", json={"action": "ping", "filter": MDI_LAPTOPS})
    assert preview.status_code == 202, preview.text
    assert preview.json()["matched"] == 3  # not the tablet, the retired laptop or LEI's
    token = preview.json()["confirmation"]
    done = api.post(
        "/api/v1/commands",
        json={"action": "ping", "filter": MDI_LAPTOPS, "confirmation": token},
    )
    assert done.status_code == 202, done.text
    assert done.json()["queued"] == 3
    assert sorted(c["device_id"] for c in done.json()["items"]) == sorted(laptops)
    # No broker is listening here: each command says so rather than waiting to expire.
    assert {c["status"] for c in done.json()["items"]} == {"failed"}
    for device_id in laptops:
        history = api.get(f"/api/v1/devices/{device_id}/commands").json()["items"]
        assert [c["action"] for c in history] == ["ping"]


def test_wrong_tampered_and_expired_tokens_are_refused(api: Api) -> None:
    _estate(api.ctx)
    preview = api.post("/api/v1/commands", json={"action": "ping", "filter": MDI_LAPTOPS}).json()
    token = preview["confirmation"]

    def confirm(body: dict[str, object], **who: object) -> dict[str, object]:
        resp = api.post("/api/v1/commands", json=body, **who)  # type: ignore[arg-type]
        assert resp.status_code == 422, resp.text
        assert [e["field"] for e in resp.json()["errors"]] == ["confirmation"]
        return dict(resp.json())

    other_action = confirm({"action": "lock", "filter": MDI_LAPTOPS, "confirmation": token})
    assert "another action, filter or user" in str(other_action["detail"])
    confirm({"action": "ping", "filter": {"prison": ["MDI"]}, "confirmation": token})
    confirm(
        {"action": "ping", "filter": MDI_LAPTOPS, "confirmation": token},
        role="it-support",
    )
    body, _, mac = token.partition(".")
    doc = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    doc["n"] = 1000
    forged = base64.urlsafe_b64encode(orjson.dumps(doc)).decode().rstrip("=") + "." + mac
    confirm({"action": "ping", "filter": MDI_LAPTOPS, "confirmation": forged})
    confirm({"action": "ping", "filter": MDI_LAPTOPS, "confirmation": "garbage"})

    asked = bulk.Confirmation(
        user_id=doc["u"], action="ping", params={}, filter=doc["f"], matched=doc["n"]
    )
    stale = bulk.issue_token(api.ctx.settings.secret_key, asked, now=0)
    expired = confirm({"action": "ping", "filter": MDI_LAPTOPS, "confirmation": stale})
    assert "expired" in str(expired["detail"])

    # A device that joins the filter after the preview changes the count: confirm again.
    with transaction(api.ctx.sessions) as session:
        add_device(session, prison="MDI", kind="laptop")
    moved = confirm({"action": "ping", "filter": MDI_LAPTOPS, "confirmation": token})
    assert "now matches 4 device(s), not the 3" in str(moved["detail"])
    assert api.get("/api/v1/devices?kind=laptop&prison=MDI").json()["count"] == 5


def test_bulk_roles_and_bad_filters(api: Api) -> None:
    _estate(api.ctx)
    for role in ("viewer", "facilities"):
        resp = api.post("/api/v1/commands", json={"action": "ping"}, role=role)
        assert resp.status_code == 403
    caseload = api.post(
        "/api/v1/commands",
        json={"action": "ping", "filter": {"kind": "laptop"}},
        role="it-support",
        prisons=["LEI"],
    )
    assert caseload.json()["matched"] == 1  # only LEI's laptop is visible to this user
    for body, field in (
        ({"action": "ping", "filter": {"prison": ["XXX"]}}, "filter.prison"),
        ({"action": "ping", "filter": {"kind": "toaster"}}, "filter.kind"),
        ({"action": "ping", "filter": {"landing": "MDI-9-9"}}, "filter.landing"),
        ({"action": "ping", "filter": {"colour": "red"}}, "filter.colour"),
        ({"action": "shutdown"}, "action"),
    ):
        resp = api.post("/api/v1/commands", json=body)
        assert resp.status_code == 422, (body, resp.text)
        assert [e["field"] for e in resp.json()["errors"]] == [field], resp.text


def test_a_filter_matching_more_than_the_bulk_limit_is_refused_with_nothing_queued(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    laptops = _estate(api.ctx)["laptops"]
    monkeypatch.setattr(bulk, "MAX_BULK_DEVICES", 2)
    refused = api.post("/api/v1/commands", json={"action": "ping", "filter": MDI_LAPTOPS})
    assert refused.status_code == 422, refused.text
    error = refused.json()["errors"][0]
    assert error["field"] == "filter"
    assert "matches more than 2 devices; narrow it to 2 or fewer" in error["message"]
    monkeypatch.setattr(bulk, "MAX_BULK_DEVICES", 3)
    assert (
        api.post("/api/v1/commands", json={"action": "ping", "filter": MDI_LAPTOPS}).json()[
            "matched"
        ]
        == 3
    )
    for device_id in laptops:
        assert api.get(f"/api/v1/devices/{device_id}/commands").json()["items"] == []
