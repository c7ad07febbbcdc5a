"""The agent's local SQLite database: outgoing report buffer, counters and seen command nonces."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DATABASE_FILE = "agent.db"

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: ids never go back after deletes
    seq INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS seen_nonce (
    nonce TEXT PRIMARY KEY,
    exp INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS seen_nonce_exp ON seen_nonce (exp);
"""


def open_database(state_dir: Path) -> sqlite3.Connection:
    """Open (creating if needed) agent.db in the state directory.

    WAL with synchronous=NORMAL survives a crash of the agent and spares laptop disks an fsync
    per report; a power cut may lose the last few buffered reports, never the seq counter
    (that lives in counters.json with its own fsync).
    """
    conn = sqlite3.connect(
        state_dir / DATABASE_FILE,
        isolation_level=None,  # explicit BEGIN/COMMIT below, no implicit transactions
        check_same_thread=False,  # opened by start(), used by the agent's own thread only
    )
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(SCHEMA)
    return conn


def get_meta(conn: sqlite3.Connection, key: str) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return int(row[0]) if row else 0


def set_meta(conn: sqlite3.Connection, key: str, value: int) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back when the block raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
