"""The commands API on PostgreSQL: validation, lifecycle, roles and caseload, expiry."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from fleet.commands import service
from fleet.commands.models import DeviceCommand
from fleet.commands.tasks import EXPIRE_COMMANDS, beat_schedule, expire_commands
from fleet.context import Context
from fleet.db import transaction, utcnow
from fleet.devices.models import Device
from fleet.tasks.app import make_celery
from tests.estate.factories import Api, add_device, api_for
from tests.services.api_server import free_port
from tests.services.postgres import migrated_context


@pytest.fixture
def unreachable_broker_context(pg_url: str, tmp_path: Path) -> Iterator[Context]:
    """Migrated PostgreSQL; the broker URL points at a port nothing listens on."""
    ctx = migrated_context(pg_url, data_dir=tmp_path, mqtt_url=f"mqtt://127.0.0.1:{free_port()}")
    yield ctx
    ctx.close()


@pytest.fixture
def api(unreachable_broker_context: Context) -> Iterator[Api]:
    with api_for(unreachable_broker_context) as client:
        yield client


def _device(ctx: Context, *, prison: str = "MDI", lifecycle: str = "enrolled") -> str:
    with transaction(ctx.sessions) as session:
        return add_device(session, prison=prison, kind="laptop", lifecycle=lifecycle).id


def _command_count(ctx: Context) -> int:
    with ctx.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(DeviceCommand)) or 0)


def test_bad_bodies_get_422_naming_the_field(api: Api) -> None:
    url = f"/api/v1/devices/{_device(api.ctx)}/commands"
    cases = [
        ({"action": "format_disk"}, "action"),
        ({"action": "ping", "params": {"force": True}}, "params.force"),
        ({"action": "collect_diagnostics", "params": {"log_lines": 500}}, "params.log_lines"),
        ({"action": "collect_diagnostics", "params": {"log_lines": "all"}}, "params.log_lines"),
        ({"params": {}}, "action"),
        ({"action": "ping", "urgent": True}, "urgent"),
        ({"action": 7}, "action"),
        ({"action": "ping", "params": []}, "params"),
    ]
    for body, field in cases:
        resp = api.post(url, json=body)
        assert resp.status_code == 422, (body, resp.text)
        assert [e["field"] for e in resp.json()["errors"]] == [field], (body, resp.text)
    garbage = api.post(url, content=b"{not json", headers={"Content-Type": "application/json"})
    assert garbage.status_code == 422
    assert "not valid JSON" in garbage.json()["detail"]
    assert _command_count(api.ctx) == 0


def test_retired_revoked_and_unenrolled_devices_refuse_commands_with_409(api: Api) -> None:
    for lifecycle in ("retired", "revoked", "registered"):
        device_id = _device(api.ctx, lifecycle=lifecycle)
        resp = api.post(f"/api/v1/devices/{device_id}/commands", json={"action": "ping"})
        assert resp.status_code == 409, resp.text
        assert device_id in resp.json()["detail"]
    assert (
        "retired; commands are not sent"
        in api.post(
            f"/api/v1/devices/{_device(api.ctx, lifecycle='retired')}/commands",
            json={"action": "ping"},
        ).json()["detail"]
    )
    assert _command_count(api.ctx) == 0


def test_roles_and_caseload_decide_who_may_send_and_read(api: Api) -> None:
    device_id = _device(api.ctx, prison="MDI")
    url = f"/api/v1/devices/{device_id}/commands"
    for role in ("viewer", "facilities", "rollout-manager"):
        assert api.post(url, json={"action": "ping"}, role=role).status_code == 403, role
        assert api.post(url, json={"action": "reboot"}, role=role).status_code == 403, role
        assert api.get(url, role=role).status_code == 403, role
    assert api.post(url, "it-support", ["LEI"], json={"action": "ping"}).status_code == 404
    assert api.get(url, "it-support", ["LEI"]).status_code == 404
    assert _command_count(api.ctx) == 0

    # Within the caseload IT support may reboot; the broker is down, so the command fails
    # at once with that reason instead of waiting to expire.
    sent = api.post(url, json={"action": "reboot"}, role="it-support", prisons=["MDI"])
    assert sent.status_code == 202, sent.text
    command = sent.json()
    assert command["status"] == "failed"
    assert "broker is unreachable" in command["output"]
    assert command["requested_by"].startswith("user")
    assert api.get(f"/api/v1/commands/{command['id']}", "it-support", ["LEI"]).status_code == 404
    seen = api.get(f"/api/v1/commands/{command['id']}", role="it-support", prisons=["MDI"])
    assert seen.json()["id"] == command["id"]
    assert api.get("/api/v1/commands/nope").status_code == 404
    audit = api.get(f"/api/v1/devices/{device_id}").json()["audit"]
    assert [e["action"] for e in audit if e["action"].startswith("device.command")] == [
        "device.command.reboot"
    ]


def test_expiry_task_marks_unanswered_commands_expired(
    unreachable_broker_context: Context,
) -> None:
    ctx = unreachable_broker_context
    device_id = _device(ctx)
    now = utcnow()
    with transaction(ctx.sessions) as session:
        device = session.get(Device, device_id)
        assert device is not None

        def queue(action: str, minutes_ago: int) -> str:
            assert device is not None
            return service.queue_command(
                session=session,
                actor="it",
                device=device,
                action=action,
                params={},
                now=now - timedelta(minutes=minutes_ago),
                ttl_s=300,
            ).id

        unanswered = queue("ping", 10)
        delivered = queue("lock", 10)
        service.mark_delivered(session=session, command_id=delivered, now=now)
        answered = queue("refresh_config", 10)
        service.apply_reply(
            session=session,
            device_id=device_id,
            reply={"id": answered, "status": "done", "output": "ok"},
            now=now,
        )
        recent = queue("ping", 1)
    app = make_celery(ctx.settings)
    app.task(name=EXPIRE_COMMANDS, bind=True, acks_late=True)(expire_commands)
    app.conf.beat_schedule.update(beat_schedule())
    assert app.conf.beat_schedule[EXPIRE_COMMANDS]["task"] == EXPIRE_COMMANDS
    try:
        assert app.tasks[EXPIRE_COMMANDS].delay().get(timeout=10) == 2
    finally:
        app.close_context()
    with ctx.sessions() as session:
        statuses = {c.id: c.status for c in session.scalars(select(DeviceCommand))}
    assert statuses == {
        unanswered: "expired",
        delivered: "expired",
        answered: "done",
        recent: "queued",
    }
