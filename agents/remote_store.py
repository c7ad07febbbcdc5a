"""Remote requests already seen, by id, with their stored replies: a redelivery never runs twice."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import orjson

REMOTE_DATABASE_FILE = "remote.db"
# Replies are kept this long past their request's expiry, so a late redelivery still finds them.
KEEP_AFTER_EXPIRY_S = 3600
MAX_ENTRIES = 20_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS remote_request (
    id TEXT PRIMARY KEY,
    exp INTEGER NOT NULL,
    status TEXT NOT NULL,          -- running | done | failed | rejected
    reply BLOB
);
CREATE INDEX IF NOT EXISTS remote_request_exp ON remote_request (exp);
"""


class RemoteStore:
    """SQLite table of request ids; used from the agent thread and the request workers."""

    def __init__(self, state_dir: Path) -> None:
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            state_dir / REMOTE_DATABASE_FILE, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(SCHEMA)
        self._abandon_running()

    def _abandon_running(self) -> None:
        """Requests cut short by a crash or restart are failed, never started a second time."""
        rows = self._conn.execute("SELECT id FROM remote_request WHERE status = 'running'")
        for (request_id,) in rows.fetchall():
            reply = {
                "id": request_id,
                "status": "failed",
                "output": {"error": "the agent restarted while this request was running"},
            }
            self._conn.execute(
                "UPDATE remote_request SET status = 'failed', reply = ? WHERE id = ?",
                (orjson.dumps(reply), request_id),
            )

    def claim(self, request_id: str, exp: int, *, now: float) -> dict[str, Any] | None:
        """Record a new request as running (None), or return what is known of a seen one.

        For a seen request the answer is its stored reply, or an `accepted` reply while it runs.
        """
        with self._lock:
            row = self._conn.execute(
                "SELECT status, reply FROM remote_request WHERE id = ?", (request_id,)
            ).fetchone()
            if row is not None:
                status, reply = row
                if status == "running" or reply is None:
                    return {"id": request_id, "status": "accepted", "output": {"duplicate": True}}
                return dict(orjson.loads(reply))
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    "DELETE FROM remote_request WHERE exp < ?", (int(now) - KEEP_AFTER_EXPIRY_S,)
                )
                self._conn.execute(
                    "INSERT INTO remote_request (id, exp, status) VALUES (?, ?, 'running')",
                    (request_id, exp),
                )
                self._trim()
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            return None

    def finish(self, reply: dict[str, Any]) -> None:
        """Store the final reply of a claimed request."""
        with self._lock:
            self._conn.execute(
                "UPDATE remote_request SET status = ?, reply = ? WHERE id = ?",
                (reply["status"], orjson.dumps(reply), reply["id"]),
            )

    def _trim(self) -> None:
        (count,) = self._conn.execute("SELECT count(*) FROM remote_request").fetchone()
        if count > MAX_ENTRIES:
            self._conn.execute(
                "DELETE FROM remote_request WHERE id IN (SELECT id FROM remote_request"
                " WHERE status != 'running' ORDER BY exp LIMIT ?)",
                (count - MAX_ENTRIES,),
            )

    def close(self) -> None:
        with self._lock:
            self._conn.close()
