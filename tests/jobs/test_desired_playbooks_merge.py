"""The shipped desired-configuration playbooks each change only their own sections."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from fleet.automation.models import DesiredConfig
from fleet.db import transaction
from fleet.jobs import runner
from fleet.jobs.inventory import mqtt_inventory
from fleet.jobs.schemas import Selector
from fleet.jobs.service import PLAYBOOKS_DIR
from tests.automation.support import estate_with_agents
from tests.jobs.support import job_and_hosts, launch, make_template

if TYPE_CHECKING:
    from tests.services.mosquitto import DynsecBroker

WIFI = [{"ssid": "Staff", "security": "wpa2-psk", "psk": "correct horse battery"}]
APPS = ["uk.gov.justice.content", "uk.gov.justice.phone"]


def test_applying_wifi_then_kiosk_keeps_both_sections_on_the_device(
    pg_url: str, dynsec_broker: DynsecBroker, tmp_path: Path
) -> None:
    with estate_with_agents(pg_url, dynsec_broker, tmp_path, 1) as estate:
        ctx = estate.plane.ctx
        (device_id,) = estate.agents
        selector = Selector(device_ids=[device_id])
        runs = [
            ("wifi-profile.yml", {"wifi_networks": WIFI}),
            (
                "kiosk-allow-list.yml",
                {"apps_allowed": APPS, "kiosk_enabled": True, "kiosk_app": APPS[0]},
            ),
        ]
        for playbook, variables in runs:
            template = make_template(
                ctx,
                name=playbook,
                playbook=playbook,
                selector=selector,
                variables=variables,
                root=PLAYBOOKS_DIR,
            )
            job_id = launch(ctx, template, inventory_builder=mqtt_inventory, root=PLAYBOOKS_DIR)
            assert runner.drive(ctx, job_id) == "successful", playbook
            _job, hosts = job_and_hosts(ctx, job_id)
            assert hosts[device_id].status == "ok"

        with transaction(ctx.sessions) as session:
            desired = session.get(DesiredConfig, device_id)
            assert desired is not None
            assert desired.version == 2
            assert [n["ssid"] for n in desired.doc["wifi"]] == ["Staff"]
            assert desired.doc["apps_allowed"] == APPS
            assert desired.doc["kiosk"]["enabled"] is True
        applied = estate.agents[device_id].state_dir / "desired"
        assert [n["ssid"] for n in json.loads((applied / "wifi.json").read_text())] == ["Staff"]
        assert json.loads((applied / "apps_allowed.json").read_text()) == APPS
        assert json.loads((applied / "kiosk.json").read_text())["app"] == APPS[0]
