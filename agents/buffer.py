"""Bounded on-disk queue of health reports awaiting the broker's PUBACK, oldest dropped first."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable

from agents.store import get_meta, set_meta, transaction

log = logging.getLogger(__name__)

DEFAULT_MAX_REPORTS = 10_000
DROPPED_KEY = "buffer_dropped"


class ReportBuffer:
    """Every health report passes through here, so replayed and live reports keep one order.

    A report stays until the broker acknowledges it; when the buffer is full the oldest report
    is dropped and counted (the count is persisted and reported as the `buffer_dropped` metric).
    """

    def __init__(self, conn: sqlite3.Connection, *, max_reports: int = DEFAULT_MAX_REPORTS) -> None:
        if max_reports < 1:
            raise ValueError("max_reports must be at least 1")
        self._conn = conn
        self.max_reports = max_reports
        self.pending: int = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
        self.dropped: int = get_meta(conn, DROPPED_KEY)
        if self.pending > max_reports:  # the bound was lowered since the last run
            with transaction(conn):
                removed = self._drop_oldest(self.pending - max_reports)
            self._count_dropped(removed)

    def append(self, seq: int, payload: bytes) -> int:
        """Queue one report; return how many old reports were dropped to make room."""
        excess = max(0, self.pending + 1 - self.max_reports)
        removed = 0
        with transaction(self._conn):
            self._conn.execute("INSERT INTO outbox (seq, payload) VALUES (?, ?)", (seq, payload))
            if excess:
                removed = self._drop_oldest(excess)
        self.pending += 1
        if removed:
            self._count_dropped(removed)
        return removed

    def _drop_oldest(self, count: int) -> int:
        cur = self._conn.execute(
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?)", (count,)
        )
        set_meta(self._conn, DROPPED_KEY, self.dropped + cur.rowcount)
        return cur.rowcount

    def _count_dropped(self, removed: int) -> None:
        self.pending -= removed
        self.dropped += removed
        log.warning(
            "report buffer full (%d): dropped the %d oldest report(s), %d dropped in total",
            self.max_reports,
            removed,
            self.dropped,
        )

    def after(self, last_id: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to `limit` queued reports with an id above `last_id`, oldest first."""
        rows = self._conn.execute(
            "SELECT id, payload FROM outbox WHERE id > ? ORDER BY id LIMIT ?", (last_id, limit)
        ).fetchall()
        return [(int(row_id), bytes(payload)) for row_id, payload in rows]

    def remove(self, ids: Iterable[int]) -> None:
        """Forget reports the broker has acknowledged."""
        batch = [(i,) for i in ids]
        if not batch:
            return
        with transaction(self._conn):
            cur = self._conn.executemany("DELETE FROM outbox WHERE id = ?", batch)
        self.pending -= cur.rowcount

    def clear(self) -> None:
        """Drop every queued report (they belong to an identity that is being replaced)."""
        with transaction(self._conn):
            self._conn.execute("DELETE FROM outbox")
        self.pending = 0
