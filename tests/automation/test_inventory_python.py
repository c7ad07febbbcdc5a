"""The interpreter a laptop's agent reports runs its modules; devices without Python refuse them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from agents.interpreter import system_python
from fleet.automation.gateway import JobGateway
from fleet.automation.inventory import NO_PYTHON_GROUP, PYTHON_GROUP, build_inventory
from fleet.db import transaction
from fleet.devices.models import Device, DeviceState
from tests.automation.support import estate_with_agents, run_playbook

if TYPE_CHECKING:
    from tests.services.mosquitto import DynsecBroker


def test_modules_run_on_laptops_and_are_refused_on_devices_without_python(
    pg_url: str, dynsec_broker: DynsecBroker, tmp_path: Path
) -> None:
    with estate_with_agents(pg_url, dynsec_broker, tmp_path, 2) as estate:
        laptop, phone = sorted(estate.agents)
        ctx = estate.plane.ctx
        with transaction(ctx.sessions) as session:
            session.get(Device, phone).kind = "in_cell_phone"  # type: ignore[union-attr]
            # Both agents run on this machine and found its Python; a phone has none.
            session.get(DeviceState, phone).python_interpreter = None  # type: ignore[union-attr]
        with transaction(ctx.sessions) as session:
            devices = list(session.scalars(select(Device).order_by(Device.id)))
            inventory = build_inventory(session, devices)
            reported = session.get(DeviceState, laptop).python_interpreter  # type: ignore[union-attr]
        assert reported == system_python() != ""
        assert inventory["all"]["hosts"][laptop]["ansible_python_interpreter"] == reported
        children = inventory["all"]["children"]
        assert list(children[PYTHON_GROUP]["hosts"]) == [laptop]
        assert list(children[NO_PYTHON_GROUP]["hosts"]) == [phone]
        assert inventory["all"]["hosts"][phone]["estate_python"] is False
        assert "ansible_python_interpreter" not in inventory["all"]["hosts"][phone]

        tasks = [
            {"name": "ping", "ansible.builtin.ping": {}},
            {"name": "write", "ansible.builtin.copy": {"content": "hi\n", "dest": "~/note"}},
            {"name": "raw", "ansible.builtin.raw": "echo raw-ok"},
        ]
        plays = [{"hosts": "all", "gather_facts": False, "ignore_errors": True, "tasks": tasks}]
        with JobGateway(ctx.settings, job_id="python") as gw:
            run = run_playbook(gw, tmp_path / "job", plays, inventory)

        # The laptop runs Python modules through the interpreter its agent reported.
        assert run.results("runner_on_ok")[laptop] == ["ping", "write", "raw"], run.stdout
        assert run.result_of(laptop, "ping")["ping"] == "pong"
        assert (estate.sandbox(laptop) / "note").read_text() == "hi\n"
        # The phone refuses each module with the reason, and still takes the raw command.
        assert run.results("runner_on_failed")[phone] == ["ping", "write"], run.stdout
        for task in ("ping", "write"):
            assert "has no Python (estate_python is false)" in run.result_of(phone, task)["msg"]
        assert run.results("runner_on_ok")[phone] == ["raw"]
        assert "raw-ok" in run.result_of(phone, "raw")["stdout"]
        assert not (estate.sandbox(phone) / "note").exists()
