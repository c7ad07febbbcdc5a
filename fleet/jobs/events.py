"""Batching ansible-runner events into the database as a run produces them."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from fleet.db import transaction, utcnow
from fleet.jobs.execution import HostResult
from fleet.jobs.models import JobEvent, JobHost

log = logging.getLogger(__name__)
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
MAX_STDOUT = 8000
BATCH_SIZE = 200
BATCH_SECONDS = 0.5
HOST_FAILURE_EVENTS = {"runner_on_failed": "failed", "runner_on_unreachable": "unreachable"}


def _message(data: dict[str, Any]) -> str:
    result = data.get("res") or {}
    if not isinstance(result, dict):
        return str(result)[:500]
    text = result.get("msg") or result.get("stderr") or result.get("stdout") or ""
    return str(text)[:500]


def _clean(stdout: str) -> str:
    return ANSI.sub("", stdout).replace("\r\n", "\n").strip("\n")[:MAX_STDOUT]


class EventRecorder:
    """Collects a stage's events; writes them in batches and keeps each host's outcome."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        job_id: int,
        stage: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessions = sessions
        self.job_id = job_id
        self.stage = stage
        self.clock = clock
        self.pending: list[dict[str, Any]] = []
        self.live_status: dict[str, str] = {}
        self.messages: dict[str, str] = {}
        self.stats: dict[str, dict[str, int]] | None = None
        self.status = "unstarted"
        self.written = 0
        self._last_flush = clock()

    def on_event(self, event: dict[str, Any]) -> bool:
        """ansible-runner's event_handler; False keeps the event off the disk."""
        data = event.get("event_data") or {}
        name = str(event.get("event", ""))
        host = data.get("host")
        failed = name in HOST_FAILURE_EVENTS and not data.get("ignore_errors")
        if failed and host:
            self.live_status[host] = HOST_FAILURE_EVENTS[name]
            self.messages[host] = _message(data)
        if name == "playbook_on_stats":
            self.stats = {
                key: dict(data.get(key) or {})
                for key in ("ok", "changed", "failures", "dark", "skipped", "processed")
            }
        created = event.get("created")
        self.pending.append(
            {
                "job_id": self.job_id,
                "stage": self.stage,
                "counter": int(event.get("counter", 0)),
                "event": name[:60],
                "host": str(host)[:64] if host else None,
                "task": str(data.get("task") or data.get("play") or "")[:300],
                "stdout": _clean(str(event.get("stdout") or "")),
                "failed": failed,
                "created_at": datetime.fromisoformat(created) if created else utcnow(),
            }
        )
        if len(self.pending) >= BATCH_SIZE or self.clock() - self._last_flush >= BATCH_SECONDS:
            self.flush()
        return False

    def on_status(self, status: dict[str, Any], runner_config: Any = None) -> None:
        """ansible-runner's status_handler (its 'starting' payload holds the env: not logged)."""
        self.status = str(status.get("status", ""))
        log.info("job %d stage %d: ansible-runner %s", self.job_id, self.stage, self.status)

    def flush(self) -> None:
        """Write what is buffered, and the hosts already known to have failed."""
        self._last_flush = self.clock()
        if not self.pending and not self.live_status:
            return
        rows, self.pending = self.pending, []
        with transaction(self.sessions) as session:
            if rows:
                # A redelivered event (same job, stage and counter) is written once.
                insert = (
                    pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
                )
                session.execute(insert(JobEvent).on_conflict_do_nothing(), rows)
            for status in ("failed", "unreachable"):
                hosts = [h for h, s in self.live_status.items() if s == status]
                if hosts:
                    session.execute(
                        update(JobHost)
                        .where(
                            JobHost.job_id == self.job_id,
                            JobHost.device_id.in_(hosts),
                            JobHost.status == "running",
                        )
                        .values(status=status, updated_at=utcnow())
                    )
        self.written += len(rows)

    def results(self, stage_hosts: list[str]) -> dict[str, HostResult]:
        """Each host's outcome from the play recap (or the failures seen live without one)."""
        results: dict[str, HostResult] = {}
        stats = self.stats or {}
        for host in stage_hosts:
            counts = {key: int(stats.get(key, {}).get(host, 0)) for key in stats}
            if counts.get("dark"):
                status = "unreachable"
            elif counts.get("failures"):
                status = "failed"
            elif host in stats.get("processed", {}):
                status = "ok"
            elif host in self.live_status:
                status = self.live_status[host]
            else:
                continue
            results[host] = HostResult(
                status=status,
                ok=counts.get("ok", 0),
                changed=counts.get("changed", 0),
                failures=counts.get("failures", 0),
                skipped=counts.get("skipped", 0),
                message=self.messages.get(host, ""),
            )
        return results
