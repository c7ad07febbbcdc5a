"""How simulated devices answer signed commands: verified like the real agent, with
plausible replies and effects (a reboot drops the connection and comes back as a new boot)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson

from agents.commands import reply_document, unverified_field
from agents.ed25519 import SignatureKey
from agents.protocol import Rejected, dumps, verify_envelope
from fleet.simulate.enrol import SIM_AGENT_VERSION

log = logging.getLogger(__name__)

MAX_REMEMBERED_NONCES = 50_000
ACTION_DELAY_S = 0.3  # how long a simulated action "runs" before its reply
REBOOT_DOWN_S = 2.0
RESTART_DOWN_S = 0.5

OUTPUTS = {
    "ping": "pong",
    "lock": "locked the sessions (simulated)",
    "refresh_config": "asked the broker for the current configuration",
    "reboot": "rebooting (simulated)",
    "restart_agent": "restarting the agent (simulated)",
}
# Actions after which the simulated device goes away for a while and returns as a new boot.
DOWN_FOR_S = {"reboot": REBOOT_DOWN_S, "restart_agent": RESTART_DOWN_S}


@dataclass(frozen=True)
class SimReply:
    payload: bytes
    delay_s: float
    down_for_s: float | None = None  # then drop the connection for this long


class SimCommands:
    """Verifies commands for every simulated device and decides each reply; not thread-safe
    (each shard has its own)."""

    def __init__(self, public_key: SignatureKey) -> None:
        self._public_key = public_key
        self._nonces: dict[str, int] = {}

    def handle(self, device_id: str, raw: bytes, *, boot: int, seq: int) -> SimReply:
        now = time.time()
        try:
            command = verify_envelope(self._public_key, device_id, raw, now=now)
            self._remember(command, now)
        except Rejected as exc:
            command_id = unverified_field(raw, "id")
            log.info("simulated %s rejected command %r: %s", device_id, command_id, exc)
            return SimReply(dumps(reply_document(command_id, "rejected", exc.reason)), 0.0)
        action = command.get("action")
        if action == "collect_diagnostics":
            facts = {"agent": SIM_AGENT_VERSION, "boot": boot, "seq": seq, "simulated": True}
            output = orjson.dumps(facts).decode()
        elif isinstance(action, str) and action in OUTPUTS:
            output = OUTPUTS[action]
        else:
            reply = reply_document(command["id"], "failed", f"unsupported action: {action}")
            return SimReply(dumps(reply), 0.0)
        reply = reply_document(command["id"], "done", output)
        return SimReply(dumps(reply), ACTION_DELAY_S, DOWN_FOR_S.get(str(action)))

    def _remember(self, command: dict[str, Any], now: float) -> None:
        nonce, exp = command.get("nonce"), command.get("exp")
        if not isinstance(nonce, str) or not nonce or not isinstance(exp, int):
            raise Rejected("malformed_envelope", "nonce and exp are required")
        if nonce in self._nonces:
            raise Rejected("replayed", "command already seen")
        if len(self._nonces) >= MAX_REMEMBERED_NONCES:
            self._nonces = {n: e for n, e in self._nonces.items() if e >= now}
        self._nonces[nonce] = exp
