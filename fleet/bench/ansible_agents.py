"""Many real agents in one process for `estate bench ansible`: each its own identity, state
directory, sandbox and MQTT connection, speaking the device protocol to the bench's broker.

Run as `python -m fleet.bench.ansible_agents COUNT STATE_ROOT MQTT_URL PUBLIC_KEY PREFIX`;
prints `ready` once every agent listens, and stops them all when its standard input closes.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from agents.identity import Identity
from agents.runner import Agent

READY = "ready"
SUBSCRIBE_WAIT_S = 60.0


def device_ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{n:04d}" for n in range(count)]


def main(argv: list[str]) -> int:
    count, root, url, public_key, prefix = int(argv[0]), Path(argv[1]), argv[2], argv[3], argv[4]
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    agents = []
    for device_id in device_ids(prefix, count):
        identity = Identity(
            device_id=device_id,
            prison_code="MDI",
            mqtt_url=url,
            mqtt_username=device_id,
            mqtt_password="",
            signing_public_key=public_key,
        )
        agent = Agent(
            identity, root / device_id, metrics=lambda: {"battery": 100.0}, interval_s=3600
        )
        agent.start()
        agents.append(agent)
    try:
        for agent in agents:
            if not agent.wait_subscribed(SUBSCRIBE_WAIT_S):
                print(f"agent {agent.device_id} did not subscribe", file=sys.stderr)
                return 1
        print(READY, flush=True)
        sys.stdin.read()  # until the bench closes our input
    finally:
        for agent in agents:
            agent.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
