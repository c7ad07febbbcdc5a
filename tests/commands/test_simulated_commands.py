"""Simulated devices answer real commands from the API as a device would."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from fleet.simulate.simulator import Simulator
from tests.commands.plane import command_plane, wait_for

if TYPE_CHECKING:
    from tests.services.mosquitto import DynsecBroker


def test_simulated_devices_reply_and_a_reboot_comes_back_as_a_new_boot(
    pg_url: str, dynsec_broker: DynsecBroker, tmp_path: Path
) -> None:
    with command_plane(pg_url, dynsec_broker, tmp_path) as cp:
        sim = Simulator(cp.ctx.settings, ["MDI"], 2, interval=0.5, seed=7, context=cp.ctx)
        try:
            sim.start()
            assert sim.wait_online(20)
            device_id = sorted(d.device_id for d in sim.devices())[0]
            wait_for(lambda: cp.device(device_id)["online"], 20, "simulated device online")

            ping = cp.run(device_id, "ping")
            assert (ping["status"], ping["output"]) == ("done", "pong")
            facts = orjson.loads(cp.run(device_id, "collect_diagnostics")["output"])
            assert facts["simulated"] is True
            assert facts["boot"] == cp.device(device_id)["boot"]

            boot = cp.device(device_id)["boot"]
            reboot = cp.run(device_id, "reboot")
            assert reboot["status"] == "done"
            back = wait_for(
                lambda: (d := cp.device(device_id))["boot"] == boot + 1 and d["online"] and d,
                20,
                "the simulated device back as a new boot",
            )
            assert back["state"] == "online"
            assert cp.run(device_id, "ping")["output"] == "pong"
        finally:
            sim.stop()
