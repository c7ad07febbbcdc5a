"""`estate bench ansible`: one three-task playbook over MQTT to N real agents, and the same
playbook with `ansible_connection=local` in the same run as the baseline.

The bench starts its own Mosquitto on a free port (anonymous, loopback only), a key of its own,
and one child process hosting N agents. Ansible runs through ansible-runner and the job
gateway exactly as a job does; only the presence lookup is off, since no database is involved.
"""

from __future__ import annotations

import base64
import getpass
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ansible_runner
import psutil
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from agents.protocol import public_key_b64
from fleet.automation.gateway import JobGateway
from fleet.automation.link import unknown_presence
from fleet.bench.ansible_agents import READY, device_ids
from fleet.bench.stores import BenchError
from fleet.settings import Settings

Progress = Callable[[str], None]
TASKS = 3
BAR_S = 60.0
# Python modules, as real playbooks use: on this machine every device's modules share its CPUs.
MODULE_TASKS = [
    {"name": "reachable", "ansible.builtin.ping": {}},
    {
        "name": "write a file",
        "ansible.builtin.copy": {
            "content": "configured by estate {{ inventory_hostname }}\n",
            "dest": "{{ bench_dir }}/bench.txt",
            "mode": "0644",
        },
    },
    {"name": "run a command", "ansible.builtin.command": "cat {{ bench_dir }}/bench.txt"},
]
# The same steps without Python on the device: what the transport itself costs.
RAW_TASKS = [
    {"name": "reachable", "ansible.builtin.raw": "uname -n"},
    {
        "name": "write a file",
        "ansible.builtin.raw": "echo configured by estate > {{ bench_dir }}/bench.txt",
    },
    {"name": "run a command", "ansible.builtin.raw": "cat {{ bench_dir }}/bench.txt"},
]
PLAYBOOKS = {"modules": MODULE_TASKS, "raw": RAW_TASKS}


def playbook(kind: str) -> list[dict[str, Any]]:
    return [{"hosts": "all", "gather_facts": False, "tasks": PLAYBOOKS[kind]}]


@dataclass(frozen=True)
class PlaybookRun:
    seconds: float
    cpu_s: float  # Ansible, this process and (over MQTT) the agents: independent of load
    agents_cpu_s: float  # of which the agents' process (their commands included)
    ok: int
    failed: int
    unreachable: int


@dataclass(frozen=True)
class AnsibleFigures:
    agents: int
    forks: int
    kind: str
    mqtt: PlaybookRun
    local: PlaybookRun
    round_trips: dict[str, tuple[int, float]]  # action -> (requests, seconds), gateway side

    @property
    def overhead_per_task_s(self) -> float:
        return (self.mqtt.seconds - self.local.seconds) / TASKS

    def line(self) -> str:
        m, loc = self.mqtt, self.local
        verdict = "met" if m.seconds < BAR_S else "MISSED"
        return (
            f"ansible over MQTT: {self.agents} agents, {TASKS} {self.kind} tasks, "
            f"forks {self.forks}: "
            f"total {m.seconds:.1f} s ({m.seconds / TASKS:.2f} s/task, {m.ok} ok, "
            f"{m.failed} failed, {m.unreachable} unreachable; CPU {m.cpu_s:.1f} s, of which "
            f"agents {m.agents_cpu_s:.1f} s); "
            f"ansible_connection=local baseline {loc.seconds:.1f} s "
            f"({loc.seconds / TASKS:.2f} s/task; CPU {loc.cpu_s:.1f} s); overhead "
            f"{self.overhead_per_task_s:+.2f} s per task "
            f"({1000 * self.overhead_per_task_s / self.agents:+.1f} ms per host-task), "
            f"x{m.seconds / loc.seconds:.2f} of local wall, x{m.cpu_s / loc.cpu_s:.2f} of its "
            f"CPU ({1000 * (m.cpu_s - loc.cpu_s) / (self.agents * TASKS):+.1f} ms CPU per "
            f"host-task); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
            f"bar {BAR_S:.0f} s: {verdict}; requests over MQTT: {self._requests()}"
        )

    def _requests(self) -> str:
        return ", ".join(
            f"{action.removeprefix('remote.')} {count} x {1000 * total / count:.0f} ms"
            for action, (count, total) in sorted(self.round_trips.items())
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _mosquitto(workdir: Path) -> Iterator[int]:
    """A private broker on a free loopback port for the bench's agents and gateway."""
    binary = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")
    if binary is None:
        raise BenchError("mosquitto is not installed; run scripts/install-system-deps")
    port = _free_port()
    config = workdir / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nuser {getpass.getuser()}\n"
        f"log_dest file {workdir / 'mosquitto.log'}\n"
    )
    proc = subprocess.Popen([binary, "-c", str(config)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise BenchError(f"mosquitto did not start on port {port}") from None
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stderr:
            proc.stderr.close()


@contextmanager
def _agents(
    count: int, root: Path, url: str, public_key: str, prefix: str
) -> Iterator[psutil.Process]:
    """The child process hosting `count` agents, once all of them listen."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fleet.bench.ansible_agents",
            str(count),
            str(root),
            url,
            public_key,
            prefix,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != READY:
            raise BenchError(f"the agents did not start (exit status {proc.wait(30)})")
        yield psutil.Process(proc.pid)
    finally:
        if proc.stdin:
            proc.stdin.close()  # the host stops its agents cleanly
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


def _cpu_of(processes: tuple[psutil.Process, ...]) -> float:
    total = 0.0
    for proc in processes:
        times = proc.cpu_times()
        total += times.user + times.system + times.children_user + times.children_system
    return total


def _cpu(*others: psutil.Process) -> float:
    """CPU seconds used so far by this process, its finished children and `others`."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime + _cpu_of(others)


def _run(
    data_dir: Path,
    plays: list[dict[str, Any]],
    inventory: dict[str, Any],
    env: dict[str, str],
    forks: int,
    *also: psutil.Process,
) -> PlaybookRun:
    data_dir.mkdir()
    started, cpu_before, agents_before = time.monotonic(), _cpu(*also), _cpu_of(also)
    result = ansible_runner.run(
        private_data_dir=str(data_dir),
        playbook=plays,
        inventory=inventory,
        envvars={**env, "ANSIBLE_NOCOLOR": "1"},
        forks=forks,
        quiet=True,
    )
    seconds, cpu_s = time.monotonic() - started, _cpu(*also) - cpu_before
    agents_cpu_s = _cpu_of(also) - agents_before
    counts = {"runner_on_ok": 0, "runner_on_failed": 0, "runner_on_unreachable": 0}
    for event in result.events:
        if event.get("event") in counts:
            counts[event["event"]] += 1
    return PlaybookRun(
        seconds,
        cpu_s,
        agents_cpu_s,
        counts["runner_on_ok"],
        counts["runner_on_failed"],
        counts["runner_on_unreachable"],
    )


def _inventory(hosts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    # Modules run under the system Python in both runs, as on a device; a virtualenv's
    # interpreter starts three times slower and would dominate both figures.
    python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
    return {"all": {"hosts": hosts, "vars": {"ansible_python_interpreter": python}}}


def run_ansible_bench(
    *, agents: int, forks: int, kind: str = "modules", progress: Progress = lambda _line: None
) -> AnsibleFigures:
    """Time the playbook over MQTT to `agents` agents, then locally for the same hosts."""
    work = Path(tempfile.mkdtemp(prefix="estate-bench-ansible-"))
    try:
        key = Ed25519PrivateKey.generate()
        seed = base64.b64encode(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))
        ids = device_ids("BENCH", agents)
        with _mosquitto(work) as port:
            url = f"mqtt://127.0.0.1:{port}"
            settings = Settings(data_dir=work / "plane", mqtt_url=url, signing_key=seed.decode())
            progress(f"starting {agents} agents on the bench broker (port {port})")
            with _agents(agents, work / "agents", url, public_key_b64(key), "BENCH") as host:
                hosts = {
                    d: {"ansible_host": d, "ansible_connection": "estate_mqtt", "bench_dir": "~"}
                    for d in ids
                }
                progress(f"running {TASKS} tasks on {agents} agents over MQTT (forks {forks})")
                with JobGateway(settings, job_id="bench", presence=unknown_presence) as gw:
                    mqtt = _run(
                        work / "mqtt", playbook(kind), _inventory(hosts), gw.env(), forks, host
                    )
                    round_trips = dict(gw.link.round_trips)
        if mqtt.ok != agents * TASKS:
            raise BenchError(
                f"only {mqtt.ok} of {agents * TASKS} host-tasks succeeded over MQTT "
                f"({mqtt.failed} failed, {mqtt.unreachable} unreachable)"
            )
        local_hosts = {}
        for d in ids:
            (work / "local" / d).mkdir(parents=True)
            local_hosts[d] = {"ansible_connection": "local", "bench_dir": str(work / "local" / d)}
        progress(f"running the same playbook with ansible_connection=local for {agents} hosts")
        pipelined = {"ANSIBLE_PIPELINING": "True"}  # as over MQTT, so only the transport differs
        local = _run(work / "baseline", playbook(kind), _inventory(local_hosts), pipelined, forks)
        return AnsibleFigures(agents, forks, kind, mqtt, local, round_trips)
    finally:
        shutil.rmtree(work, ignore_errors=True)
