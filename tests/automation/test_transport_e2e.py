"""The MQTT transport's guarantees against real agents: cancel, timeout, sandbox, forgery,
redelivery and offline devices."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agents.protocol import sign_envelope
from agents.remote import EXEC
from fleet.automation.gateway import JobGateway
from fleet.signing import load_signing_key
from tests.automation.support import Run, estate_with_agents, inventory_for, run_playbook
from tests.commands.plane import ReplyTap
from tests.e2e.harness import wait_for

if TYPE_CHECKING:
    from tests.services.mosquitto import DynsecBroker


def _play(*tasks: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"hosts": "all", "gather_facts": False, "tasks": list(tasks)}]


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting for a parent to reap it."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_pid(path: Path) -> int:
    wait_for(lambda: path.exists() and path.read_text().strip(), 20, f"{path.name}")
    return int(path.read_text())


def test_cancel_timeout_and_sandbox_are_enforced_by_the_agent(
    pg_url: str, dynsec_broker: DynsecBroker, tmp_path: Path
) -> None:
    logs = tmp_path / "device-logs"
    logs.mkdir()
    (logs / "app.log").write_text("started\n")
    allow = ("--allow-dir", str(logs))
    with estate_with_agents(pg_url, dynsec_broker, tmp_path, 1, *allow) as estate:
        (device,) = estate.agents
        sandbox = estate.sandbox(device)
        # The child writes its pid and sleeps: killing only the shell would leave it running.
        sleeper = "sh -c 'sleep 120 & echo $! > {{ pidfile }}; wait'"
        settings = estate.plane.ctx.settings
        with JobGateway(settings, job_id="cancel") as gw:
            outcome: list[Run] = []
            play = _play({"name": "long", "ansible.builtin.shell": sleeper})
            worker = threading.Thread(
                target=lambda: outcome.append(
                    run_playbook(
                        gw, tmp_path / "cancel", play, inventory_for([device], pidfile="~/c.pid")
                    )
                )
            )
            worker.start()
            child = _wait_pid(sandbox / "c.pid")
            assert gw.busy_devices() == {device}
            assert gw.cancel() == {device}
            wait_for(lambda: not _alive(child), 10, "the cancelled command's process group")
            worker.join(30)
            assert "cancelled" in outcome[0].result_of(device, "long")["msg"]
            assert gw.busy_devices() == set()

            timed = run_playbook(
                gw,
                tmp_path / "timeout",
                _play({"name": "slow", "ansible.builtin.shell": sleeper}),
                inventory_for([device], pidfile="~/t.pid", ansible_estate_command_timeout=2),
            )
            assert "timeout" in timed.result_of(device, "slow")["msg"]
            assert not _alive(int((sandbox / "t.pid").read_text()))

            outside = tmp_path / "outside.txt"
            outside.write_text("not for fetching")
            refused = run_playbook(
                gw,
                tmp_path / "outside",
                _play(
                    {
                        "name": "allowed",
                        "ansible.builtin.fetch": {
                            "src": str(logs / "app.log"),
                            "dest": str(tmp_path / "got") + "/",
                            "flat": True,
                        },
                    },
                    {
                        "name": "escape",
                        "ansible.builtin.fetch": {"src": str(outside), "dest": str(tmp_path)},
                    },
                ),
                inventory_for([device]),
            )
        assert (tmp_path / "got" / "app.log").read_text() == "started\n"
        assert "outside the allowed directories" in refused.result_of(device, "escape")["msg"]
        assert not (tmp_path / device / str(outside).lstrip("/")).exists()
        assert "refused remote" in estate.log(device)


def test_forged_and_redelivered_requests_and_an_offline_device(
    pg_url: str, dynsec_broker: DynsecBroker, tmp_path: Path
) -> None:
    with estate_with_agents(pg_url, dynsec_broker, tmp_path, 3) as estate:
        live, stopped, frozen = sorted(estate.agents)
        sandbox = estate.sandbox(live)
        key = load_signing_key(estate.plane.ctx.settings)
        tap = ReplyTap(dynsec_broker, live)
        try:
            forger = Ed25519PrivateKey.generate()
            body = {"action": EXEC, "params": {"cmd": "touch forged", "timeout": 5}}
            tap.publish(sign_envelope(forger, live, body, envelope_id="forged-1"))
            expired = sign_envelope(
                key, live, body, ttl_s=10, now=time.time() - 60, envelope_id="expired-1"
            )
            tap.publish(expired)
            (forged,) = tap.reply_to("forged-1")
            (late,) = tap.reply_to("expired-1")
            assert (forged["status"], forged["output"]["reason"]) == ("rejected", "bad_signature")
            assert (late["status"], late["output"]["reason"]) == ("rejected", "expired")
            assert not (sandbox / "forged").exists()
            assert "rejected remote request 'forged-1'" in estate.log(live)

            count = {"action": EXEC, "params": {"cmd": "echo run >> count; wc -l < count"}}
            envelope = sign_envelope(key, live, count, envelope_id="once-1")
            tap.publish(envelope)
            first = next(r for r in tap.reply_to("once-1", 2) if r["status"] == "done")
            tap.publish(envelope)  # as the broker redelivers it: the same bytes again
            again = wait_for(
                lambda: [r for r in tap.replies if r["id"] == "once-1" and r["status"] == "done"][
                    1:
                ],
                20,
                "the answer to the redelivered request",
            )[0]
            assert again == first
            assert (sandbox / "count").read_text() == "run\n"
        finally:
            tap.close()

        # Shut down: its `offline` state reaches the database through ingest.
        estate.agents[stopped].stop()
        wait_for(lambda: not estate.plane.device(stopped)["online"], 20, "the offline state")
        # A hung device: its connection stays open, so only the answer deadline can tell.
        os.kill(estate.agents[frozen].proc.pid, signal.SIGSTOP)
        try:
            with JobGateway(estate.plane.ctx.settings, job_id="offline") as gw:
                started = time.monotonic()
                run = run_playbook(
                    gw,
                    tmp_path / "offline",
                    _play({"name": "hello", "ansible.builtin.command": "true"}),
                    inventory_for([live, stopped, frozen]),
                )
                elapsed = time.monotonic() - started
        finally:
            os.kill(estate.agents[frozen].proc.pid, signal.SIGCONT)
        assert run.results("runner_on_unreachable") == {stopped: ["hello"], frozen: ["hello"]}
        assert run.results("runner_on_ok") == {live: ["hello"]}
        assert "is offline" in run.result_of(stopped, "hello")["msg"]
        assert "did not answer within 5 s" in run.result_of(frozen, "hello")["msg"]
        assert elapsed < 15, f"the unreachable devices held the run for {elapsed:.1f} s"
