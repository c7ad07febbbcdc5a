"""Signed commands: verification, replay protection and the registry of action handlers."""

from __future__ import annotations

import logging
import queue
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from agents.ed25519 import SignatureKey
from agents.protocol import Rejected, verify_envelope
from agents.store import transaction

log = logging.getLogger(__name__)

ActionHandler = Callable[[dict[str, Any]], str]
"""Runs one verified command (its signed payload) and returns the output for the reply."""

DEFAULT_MAX_NONCES = 10_000


class ActionFailed(Exception):
    """The action ran and failed; the message becomes the reply's output."""


class ActionRegistry:
    """Action name -> handler. Handlers run one at a time off the network thread."""

    def __init__(self) -> None:
        self._handlers: dict[str, ActionHandler] = {}

    def register(self, action: str, handler: ActionHandler) -> None:
        if not action or not isinstance(action, str):
            raise ValueError("an action needs a non-empty name")
        self._handlers[action] = handler

    def get(self, action: object) -> ActionHandler | None:
        return self._handlers.get(action) if isinstance(action, str) else None

    def names(self) -> list[str]:
        return sorted(self._handlers)


def ping(command: dict[str, Any]) -> str:
    """Answer to prove the device is reachable and verifies commands."""
    return "pong"


def default_actions() -> ActionRegistry:
    registry = ActionRegistry()
    registry.register("ping", ping)
    return registry


class SeenNonces:
    """Nonces of accepted commands, kept (on disk) until the command itself has expired.

    Bounded: past `max_entries` the entries closest to expiry are forgotten first.
    """

    def __init__(self, conn: sqlite3.Connection, *, max_entries: int = DEFAULT_MAX_NONCES) -> None:
        self._conn = conn
        self._max_entries = max_entries

    def remember(self, nonce: str, exp: int, *, now: float) -> None:
        """Record `nonce`; raise Rejected('replayed') if it was seen before."""
        with transaction(self._conn):
            self._conn.execute("DELETE FROM seen_nonce WHERE exp < ?", (int(now),))
            cur = self._conn.execute(
                "INSERT INTO seen_nonce (nonce, exp) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (nonce, exp),
            )
            if cur.rowcount == 0:
                raise Rejected("replayed", "command already seen")
            self._trim()

    def _trim(self) -> None:
        (count,) = self._conn.execute("SELECT count(*) FROM seen_nonce").fetchone()
        excess = count - self._max_entries
        if excess > 0:
            log.warning(
                "%d unexpired command nonces exceed the limit of %d; forgetting the %d oldest",
                count,
                self._max_entries,
                excess,
            )
            self._conn.execute(
                "DELETE FROM seen_nonce WHERE nonce IN"
                " (SELECT nonce FROM seen_nonce ORDER BY exp LIMIT ?)",
                (excess,),
            )


def unverified_field(raw: bytes, name: str) -> Any:
    """A field of an envelope's payload before verification: only for correlating replies."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    payload = doc.get("payload") if isinstance(doc, dict) else None
    return payload.get(name) if isinstance(payload, dict) else None


def verify_command(
    public_key: SignatureKey,
    device_id: str,
    raw: bytes,
    nonces: SeenNonces,
    *,
    now: float | None = None,
) -> dict[str, Any]:
    """The signed payload of a command for this device, or Rejected with the reason to reply."""
    now = time.time() if now is None else now
    payload = verify_envelope(public_key, device_id, raw, now=now)
    nonce, exp = payload.get("nonce"), payload.get("exp")
    if not isinstance(nonce, str) or not nonce or not isinstance(exp, int):
        raise Rejected("malformed_envelope", "nonce and exp are required")
    nonces.remember(nonce, exp, now=now)
    return payload


def reply_document(command_id: object, status: str, output: str) -> dict[str, Any]:
    cmd_id = command_id if isinstance(command_id, str) and len(command_id) <= 128 else ""
    return {"id": cmd_id, "status": status, "output": output}


class CommandDispatcher:
    """Checks each command for one device and runs its action off the network thread.

    Actions run one at a time in arrival order; their replies wait in a queue until the agent's
    thread collects them with `finished_replies()` and publishes them.
    """

    def __init__(
        self,
        public_key: SignatureKey,
        device_id: str,
        nonces: SeenNonces,
        actions: ActionRegistry,
    ) -> None:
        self._public_key = public_key
        self._device_id = device_id
        self._nonces = nonces
        self._actions = actions
        self._replies: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self._running = 0
        self._executor: ThreadPoolExecutor | None = None

    @property
    def busy(self) -> bool:
        return self._running > 0

    def handle(self, raw: bytes) -> dict[str, Any] | None:
        """The reply to publish at once (rejected, unsupported), or None when an action started."""
        try:
            command = verify_command(self._public_key, self._device_id, raw, self._nonces)
        except Rejected as exc:
            command_id = unverified_field(raw, "id")
            log.warning("rejected command %r for %s: %s", command_id, self._device_id, exc)
            return reply_document(command_id, "rejected", exc.reason)
        action = command.get("action")
        handler = self._actions.get(action)
        if handler is None:
            return reply_document(command["id"], "failed", f"unsupported action: {action}")
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="estate-agent-action")
        self._running += 1
        self._executor.submit(self._run, handler, command)
        return None

    def _run(self, handler: ActionHandler, command: dict[str, Any]) -> None:
        command_id, action = command["id"], command.get("action")
        try:
            status, output = "done", handler(command)
        except ActionFailed as exc:
            status, output = "failed", str(exc)
        except Exception as exc:
            log.exception("action %s (command %s) raised", action, command_id)
            status, output = "failed", f"{type(exc).__name__}: {exc}"
        self._replies.put(reply_document(command_id, status, output))

    def finished_replies(self) -> list[dict[str, Any]]:
        replies = []
        while True:
            try:
                replies.append(self._replies.get_nowait())
            except queue.Empty:
                break
        self._running -= len(replies)
        return replies

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
