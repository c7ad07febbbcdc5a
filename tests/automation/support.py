"""A control plane with real agents, and ansible-runner driving playbooks through the gateway."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ansible_runner
import yaml

from fleet.automation.gateway import JobGateway
from tests.commands.plane import CommandPlane, command_plane
from tests.e2e.harness import AgentProcess, wait_for

if TYPE_CHECKING:
    from tests.services.mosquitto import DynsecBroker


@dataclass
class Estate:
    plane: CommandPlane
    agents: dict[str, AgentProcess]  # by device id

    def sandbox(self, device_id: str) -> Path:
        return self.agents[device_id].state_dir / "sandbox"

    def log(self, device_id: str) -> str:
        return self.agents[device_id].output()


@contextmanager
def estate_with_agents(
    pg_url: str, broker: DynsecBroker, tmp: Path, count: int, *agent_options: str
) -> Iterator[Estate]:
    """The API, ingest and `count` enrolled `estate agent` processes, all online."""
    with command_plane(pg_url, broker, tmp) as plane:
        started = [
            plane.start_agent_with(f"a{n}", plane.enrolment_token(), *agent_options)
            for n in range(count)
        ]
        agents: dict[str, AgentProcess] = {}
        try:
            for agent in started:
                agents[agent.identity()["device_id"]] = agent
            for device_id, agent in agents.items():
                try:
                    wait_for(
                        lambda d=device_id: plane.device(d)["online"], 60, f"{device_id} online"
                    )
                except AssertionError as exc:
                    said = agent.output()[-3000:]
                    raise AssertionError(f"{exc}; the agent said:\n{said}") from exc
            yield Estate(plane, agents)
        finally:
            for agent in started:
                agent.stop()


@dataclass
class Run:
    status: str
    rc: int
    events: list[dict[str, Any]]
    stdout: str

    def results(self, event: str) -> dict[str, list[str]]:
        """Task names by host for runner events of one kind (runner_on_ok, _failed, ...)."""
        found: dict[str, list[str]] = {}
        for ev in self.events:
            if ev.get("event") == event:
                data = ev["event_data"]
                found.setdefault(data["host"], []).append(data.get("task", ""))
        return found

    def result_of(self, host: str, task: str) -> dict[str, Any]:
        for ev in self.events:
            data = ev.get("event_data", {})
            if data.get("host") == host and data.get("task") == task and "res" in data:
                return dict(data["res"])
        raise AssertionError(f"no result for {task!r} on {host}:\n{self.stdout[-3000:]}")


def inventory_for(device_ids: list[str], **host_vars: Any) -> dict[str, Any]:
    common = {
        "ansible_connection": "estate_mqtt",
        # The agents under test run on this machine; its system Python runs the modules.
        "ansible_python_interpreter": "/usr/bin/python3",
        **host_vars,
    }
    hosts = {d: {"ansible_host": d, **common} for d in device_ids}
    return {"all": {"hosts": hosts}}


def run_playbook(
    gateway: JobGateway,
    data_dir: Path,
    plays: list[dict[str, Any]],
    inventory: dict[str, Any],
    *,
    extravars: dict[str, Any] | None = None,
    cancel_callback: Any = None,
) -> Run:
    """ansible-runner with a private data directory, as a job runs it."""
    (data_dir / "project").mkdir(parents=True, exist_ok=True)
    (data_dir / "project" / "play.yml").write_text(yaml.safe_dump(plays, sort_keys=False))
    env = {**gateway.env(), "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_NOCOLOR": "1"}
    result = ansible_runner.run(
        private_data_dir=str(data_dir),
        playbook="play.yml",
        inventory=inventory,
        envvars=env,
        extravars=extravars or {},
        quiet=True,
        cancel_callback=cancel_callback,
        timeout=120,
    )
    with result.stdout as fh:
        stdout = fh.read()
    return Run(result.status, result.rc, list(result.events), stdout)
