"""Remote requests from a job's gateway: exec, put and fetch, signed like every command.

Each request is an envelope on the device's cmd topic whose `action` starts with `remote.`.
The agent answers on cmd/reply: `accepted` at once (so the gateway knows the device is there),
then `done`, `failed` or `rejected` with a structured `output`. Replies are stored by request
id, so a redelivered request is answered again from the store and never runs twice.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from agents.commands import unverified_field
from agents.ed25519 import SignatureKey
from agents.protocol import Rejected, verify_envelope
from agents.remote_ops import (
    ProcessTable,
    RequestFailed,
    RequestRefused,
    Sandbox,
    read_chunk,
    run_command,
    write_chunk,
)
from agents.remote_store import RemoteStore

log = logging.getLogger(__name__)

ACTION_PREFIX = "remote."
EXEC, PUT, FETCH, CANCEL = "remote.exec", "remote.put", "remote.fetch", "remote.cancel"
ACTIONS = (EXEC, PUT, FETCH, CANCEL)
MAX_CONCURRENT = 4  # commands of different jobs may overlap; transfers keep moving meanwhile


def is_remote(raw: bytes) -> bool:
    """Whether an envelope on the cmd topic is a remote request (routing only; not trusted)."""
    action = unverified_field(raw, "action")
    return isinstance(action, str) and action.startswith(ACTION_PREFIX)


def reply(request_id: object, status: str, output: dict[str, Any]) -> dict[str, Any]:
    rid = request_id if isinstance(request_id, str) and len(request_id) <= 128 else ""
    return {"id": rid, "status": status, "output": output}


class RemoteRequests:
    """Verifies, deduplicates and runs remote requests for one device, off the network thread."""

    def __init__(
        self,
        public_key: SignatureKey,
        device_id: str,
        state_dir: Path,
        sandbox: Sandbox,
        *,
        max_concurrent: int = MAX_CONCURRENT,
    ) -> None:
        self._public_key = public_key
        self._device_id = device_id
        self.sandbox = sandbox
        sandbox.prepare()
        self._state_dir = state_dir
        self._opened_store: RemoteStore | None = None
        self._processes = ProcessTable()
        self._executor = ThreadPoolExecutor(max_concurrent, thread_name_prefix="estate-remote")
        self._replies: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self._running = 0

    @property
    def _store(self) -> RemoteStore:
        """Opened on the first request: an agent that is never sent one keeps no connection."""
        if self._opened_store is None:
            self._opened_store = RemoteStore(self._state_dir)
        return self._opened_store

    @property
    def busy(self) -> bool:
        return self._running > 0

    def handle(self, raw: bytes, *, now: float | None = None) -> dict[str, Any]:
        """The reply to publish at once: rejected, a stored result, or accepted (work started)."""
        now = time.time() if now is None else now
        try:
            request = verify_envelope(self._public_key, self._device_id, raw, now=now)
        except Rejected as exc:
            request_id = unverified_field(raw, "id")
            log.warning("rejected remote request %r for %s: %s", request_id, self._device_id, exc)
            return reply(request_id, "rejected", {"reason": exc.reason, "error": str(exc)})
        request_id, action = request.get("id"), request.get("action")
        params = request.get("params")
        if not isinstance(request_id, str) or not request_id or not isinstance(params, dict):
            return reply(request_id, "rejected", {"reason": "malformed_envelope"})
        if action not in ACTIONS:
            return reply(request_id, "rejected", {"reason": "unsupported", "error": str(action)})
        try:
            seen = self._store.claim(request_id, int(request["exp"]), now=now)
        except sqlite3.Error as exc:  # a full or damaged disk must not stop the agent's loop
            log.exception("cannot record remote request %s; refusing it", request_id)
            return reply(request_id, "failed", {"error": f"the agent cannot record it: {exc}"})
        if seen is not None:
            log.info("remote request %s seen before; answering from the store", request_id)
            return seen
        if action == CANCEL:
            return self._finish(request_id, self._cancel(params))
        self._running += 1
        self._executor.submit(self._run, request_id, str(action), params)
        return reply(request_id, "accepted", {})

    def _cancel(self, params: dict[str, Any]) -> dict[str, Any]:
        wanted = params.get("requests")
        ids = [str(r) for r in wanted] if isinstance(wanted, list) else None
        killed = self._processes.cancel(ids)
        return reply("", "done", {"cancelled": killed})

    def _run(self, request_id: str, action: str, params: dict[str, Any]) -> None:
        try:
            if action == EXEC:
                output = run_command(request_id, params, self.sandbox, self._processes)
            elif action == PUT:
                output = write_chunk(params, self.sandbox)
            else:
                output = read_chunk(params, self.sandbox)
            result = reply(request_id, "done", output)
        except RequestRefused as exc:
            log.warning("refused remote %s %s on %s: %s", action, request_id, self._device_id, exc)
            result = reply(request_id, "rejected", {"reason": "refused", "error": str(exc)})
        except RequestFailed as exc:
            result = reply(request_id, "failed", exc.detail)
        except Exception as exc:
            log.exception("remote %s %s on %s raised", action, request_id, self._device_id)
            result = reply(request_id, "failed", {"error": f"{type(exc).__name__}: {exc}"})
        self._replies.put(self._finish(request_id, result))

    def _finish(self, request_id: str, result: dict[str, Any]) -> dict[str, Any]:
        result = {**result, "id": request_id}
        try:
            self._store.finish(result)
        except sqlite3.Error:
            # The answer still goes out; a redelivery would then find the request running.
            log.exception("cannot store the result of remote request %s", request_id)
        return result

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
        self._processes.cancel(None)
        self._executor.shutdown(wait=True, cancel_futures=True)
        if self._opened_store is not None:
            self._opened_store.close()
