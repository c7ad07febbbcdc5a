"""Desired configuration, drift, tags and the inventory over the real API and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import pytest
from sqlalchemy import func, select
from starlette.datastructures import QueryParams

from fleet.api.deps import Principal
from fleet.audit.models import AuditEvent
from fleet.automation.config_link import publish_unpublished
from fleet.automation.desired import record_report
from fleet.automation.models import DesiredConfig, DeviceTag
from fleet.broker.urls import close_client, connect_client
from fleet.context import Context
from fleet.db import transaction, utcnow
from fleet.devices.listing import read_query
from fleet.rollout.models import PrisonPlan, Programme
from tests.estate.factories import Api, add_device, api_for, seed_locations
from tests.services.mosquitto import free_port
from tests.services.postgres import migrated_context

if TYPE_CHECKING:
    from tests.services.mosquitto import DynsecBroker

PLUGINS = Path(__file__).resolve().parents[2] / "playbooks" / "plugins"


@pytest.fixture
def ctx(pg_url: str, dynsec_broker: DynsecBroker, tmp_path: Path) -> Iterator[Context]:
    context = migrated_context(
        pg_url,
        data_dir=tmp_path,
        mqtt_url=dynsec_broker.url_for(*dynsec_broker.ingest),
        mqtt_control_url=dynsec_broker.url_for(*dynsec_broker.control),
    )
    seed_locations(context)
    yield context
    context.close()


@pytest.fixture
def api(ctx: Context) -> Iterator[Api]:
    with api_for(ctx) as client:
        yield client


def _put(api: Api, path: str, body: object, role: str = "estate-admin", prisons: tuple = ()):
    return api.client.put(path, json=body, headers=api.auth(role, prisons))


def test_bad_desired_configuration_is_refused_with_the_field_and_nothing_is_stored(
    api: Api, ctx: Context
) -> None:
    with transaction(ctx.sessions) as session:
        device = add_device(session, prison="MDI", kind="in_cell_phone", online=True).id
    url = f"/api/v1/devices/{device}/desired-config"
    cases = {
        "doc.health_interval_s": {"doc": {"health_interval_s": 0}},
        "doc.wifi": {"doc": {"wifi": [{"ssid": "Staff", "security": "wep"}]}},
        "doc.kiosk": {"doc": {"kiosk": {"enabled": "yes"}}},
        "doc.apps_allowed": {"doc": {"apps_allowed": ["not an app"]}},
        "doc": {"doc": "everything"},
        "extra": {"doc": {}, "extra": 1},
    }
    for field, body in cases.items():
        resp = _put(api, url, body)
        assert resp.status_code == 422, (field, resp.text)
        assert resp.json()["errors"][0]["field"] == field, resp.json()
        assert resp.json()["errors"][0]["message"].endswith(".")
    assert api.get(url).status_code == 404
    assert _put(api, url, {"doc": {}}, role="viewer").status_code == 403
    assert _put(api, url, {"doc": {}}, prisons=("LEI",)).status_code == 404
    with ctx.sessions() as session:
        assert session.scalar(select(func.count()).select_from(DesiredConfig)) == 0


def test_desired_configuration_versions_drift_and_the_device_filter(api: Api, ctx: Context) -> None:
    with transaction(ctx.sessions) as session:
        phone = add_device(session, prison="MDI", kind="in_cell_phone", online=True).id
        other = add_device(session, prison="MDI", kind="tablet", online=True).id
    url = f"/api/v1/devices/{phone}/desired-config"
    wifi = {"wifi": [{"ssid": "Cells", "security": "wpa2-psk", "psk": "correct horse"}]}
    first = _put(api, url, {"doc": wifi}).json()
    # add_device's state says config_version 4: the new version goes above it.
    assert (first["version"], first["changed"], first["drift"]) == (5, True, "pending")
    assert first["published_at"] is not None
    assert first["doc"]["wifi"][0]["psk"] == "********"
    same = _put(api, url, {"doc": wifi}).json()
    assert (same["version"], same["changed"]) == (5, False)
    assert _put(api, url, {"doc": {**wifi, "health_interval_s": 30}}).json()["version"] == 6

    drifted = api.get("/api/v1/devices", params={"drift": "true"}).json()["items"]
    assert [d["id"] for d in drifted] == [phone]
    rest = api.get("/api/v1/devices", params={"drift": "false"}).json()["items"]
    assert [d["id"] for d in rest] == [other]
    assert api.get("/api/v1/devices", params={"drift": "maybe"}).status_code == 422

    with transaction(ctx.sessions) as session:
        report = {"version": 6, "status": "failed", "error": "no such network card"}
        assert record_report(session=session, device_id=phone, report=report, now=utcnow())
        assert not record_report(session=session, device_id=phone, report="junk", now=utcnow())
    refused = api.get(url).json()
    assert (refused["drift"], refused["error"]) == ("failed", "no such network card")
    summary = api.get("/api/v1/desired-config/drift").json()
    assert summary == {
        "total": {"in_sync": 0, "pending": 0, "failed": 1},
        "prisons": {"MDI": {"in_sync": 0, "pending": 0, "failed": 1}},
    }
    assert api.get("/api/v1/desired-config/drift", prisons=("LEI",)).json()["prisons"] == {}

    with transaction(ctx.sessions) as session:
        applied = {"version": 6, "status": "applied", "error": None}
        record_report(session=session, device_id=phone, report=applied, now=utcnow())
    assert api.get(url).json()["drift"] == "in_sync"
    assert api.get("/api/v1/devices", params={"drift": "true"}).json()["items"] == []
    with ctx.sessions() as session:
        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.target_id == phone)
        ).all()
    assert actions.count("device.desired_config.set") == 2


def test_tags_and_the_inventory_plugin_group_devices(
    api: Api, ctx: Context, tmp_path: Path
) -> None:
    with transaction(ctx.sessions) as session:
        laptop = add_device(
            session, prison="MDI", kind="laptop", location="MDI-2-1-002", online=True
        ).id
        phone = add_device(session, prison="MDI", location="MDI-1-1-001", online=False).id
        add_device(session, prison="MDI", lifecycle="registered")
        lei = add_device(session, prison="LEI", kind="tablet").id
        programme = Programme(
            name="In-cell phones 2026", start_date=date(2026, 1, 5), target_date=date(2026, 12, 1)
        )
        session.add(programme)
        session.flush()
        session.add(
            PrisonPlan(
                programme_id=programme.id, prison_code="MDI", planned_go_live=date(2026, 6, 1)
            )
        )
    tags_url = f"/api/v1/devices/{laptop}/tags"
    bad = _put(api, tags_url, {"tags": ["pilot", "Bad Tag"]})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "tags.1"
    with ctx.sessions() as session:
        assert session.scalar(select(func.count()).select_from(DeviceTag)) == 0
    saved = _put(api, tags_url, {"tags": ["pilot", "education", "pilot"]}).json()
    assert saved["tags"] == ["education", "pilot"]
    assert _put(api, tags_url, {"tags": []}, role="viewer").status_code == 403

    inventory = api.get("/api/v1/ansible/inventory").json()["all"]
    assert sorted(inventory["hosts"]) == sorted([laptop, phone, lei]), "enrolled devices only"
    groups = {name: sorted(g["hosts"]) for name, g in inventory["children"].items()}
    assert groups["prison_mdi"] == sorted([laptop, phone])
    assert groups["wing_mdi_2"] == [laptop]
    assert groups["tag_pilot"] == [laptop]
    assert groups["programme_in_cell_phones_2026"] == sorted([laptop, phone])
    assert groups["kind_tablet"] == [lei]
    hostvars = inventory["hosts"][laptop]
    assert hostvars["ansible_connection"] == "estate_mqtt"
    assert (hostvars["estate_location"], hostvars["estate_wing"]) == ("MDI-2-1-002", "MDI-2")
    assert inventory["hosts"][phone]["estate_python"] is False
    scoped = api.get("/api/v1/ansible/inventory", prisons=("LEI",)).json()["all"]["hosts"]
    assert list(scoped) == [lei]
    refused = api.get("/api/v1/ansible/inventory", params={"prison": "MDI"}, prisons=("LEI",))
    assert refused.status_code == 422

    source = tmp_path / "mdi.estate.yml"
    source.write_text("plugin: estate\nprisons: [MDI]\nkind: laptop\n")
    token = api.auth()["Authorization"].split(" ", 1)[1]
    listed = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(source), "--list"],
        env={
            **os.environ,
            "ESTATE_URL": str(api.client.base_url),
            "ESTATE_API_TOKEN": token,
            "ANSIBLE_INVENTORY_PLUGINS": str(PLUGINS / "inventory"),
            "ANSIBLE_INVENTORY_ENABLED": "estate",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    seen = orjson.loads(listed.stdout)
    assert seen["tag_pilot"]["hosts"] == [laptop]
    # Values from the control plane are marked unsafe: Ansible never templates them.
    tags = seen["_meta"]["hostvars"][laptop]["estate_tags"]
    assert tags == [{"__ansible_unsafe": "education"}, {"__ansible_unsafe": "pilot"}]
    assert phone not in seen["_meta"]["hostvars"]


def test_the_device_list_page_reads_the_drift_filter(ctx: Context) -> None:
    principal = Principal(1, "it", "it-support", ())
    with ctx.sessions() as session:
        query, filters, _ = read_query(
            QueryParams("drift=yes"), session=session, principal=principal, prisons=["MDI"]
        )
        assert (query.drift, filters.drift) == ("yes", True)
        assert query.url() == "/devices?drift=yes"
        query, filters, _ = read_query(
            QueryParams("drift=sometimes"), session=session, principal=principal, prisons=[]
        )
    assert filters.drift is None
    assert query.errors == {"drift": "Choose a configuration state from the list"}


def test_a_version_stored_while_the_broker_is_down_is_published_once_it_is_back(
    pg_url: str, dynsec_broker: DynsecBroker, tmp_path: Path
) -> None:
    dead = f"mqtt://estate-control:x@127.0.0.1:{free_port()}"
    ctx = migrated_context(pg_url, data_dir=tmp_path, mqtt_url=dead, mqtt_control_url=dead)
    try:
        with transaction(ctx.sessions) as session:
            phone = add_device(session, prison="MDI", online=True).id
        with api_for(ctx) as api:
            stored = _put(
                api,
                f"/api/v1/devices/{phone}/desired-config",
                {"doc": {"kiosk": {"enabled": False}}},
            )
            assert stored.status_code == 202, stored.text
            assert (stored.json()["version"], stored.json()["published_at"]) == (5, None)
        control = connect_client(dynsec_broker.address_for(*dynsec_broker.control), "pending-t")
        try:
            assert publish_unpublished(ctx, control) == 1
            assert publish_unpublished(ctx, control) == 0, "published once"
        finally:
            close_client(control)
        with ctx.sessions() as session:
            row = session.get(DesiredConfig, phone)
            assert row is not None
            assert row.published_at is not None
    finally:
        ctx.close()
