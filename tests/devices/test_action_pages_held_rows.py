"""An action sent from the device page while another connection holds the device's row
waits for it, and the server goes on answering others meanwhile."""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy import select

from fleet.commands.models import DeviceCommand
from fleet.db import transaction
from fleet.devices.models import Device
from tests.alerts.held_row import PROMPT_S, send_while_row_held
from tests.facilities.fault_site import web_client
from tests.web.site import running_site


def test_an_action_waiting_on_the_held_device_row_leaves_the_server_answering(
    pg_url: str, tmp_path: Path
) -> None:
    with running_site(pg_url, tmp_path) as site, web_client(site, "support") as client:
        device = site.mdi_device
        token, _ = client.form_tokens(f"/devices/{device}")
        held = send_while_row_held(
            site.ctx,
            select(Device).where(Device.id == device),
            lambda: client.http.post(
                f"/devices/{device}/actions",
                data={"csrf_token": token, "action": "refresh_config"},
            ),
            lambda: httpx.get(f"{site.base}/healthz", timeout=5),
        )
        with transaction(site.ctx.sessions) as session:
            sent = list(
                session.scalars(select(DeviceCommand).where(DeviceCommand.device_id == device))
            )
    assert held.other is not None, "the server stopped answering while the action waited"
    assert held.other.status_code == 200
    assert held.other_seconds < PROMPT_S
    assert held.still_waiting
    assert held.answer.status_code == 303, held.answer.text
    assert [(c.action, c.requested_by) for c in sent] == [("refresh_config", "support")]
    assert held.answer.headers["location"] == f"/devices/{device}?sent={sent[0].id}"
