"""Prometheus multiprocess mode for commands that fork or spawn workers.

With several processes (`estate serve --workers N`, `estate worker`'s prefork children), each
process writes its counters and histograms to files in PROMETHEUS_MULTIPROC_DIR and /metrics
adds them up, so the totals are right whichever process answers the scrape. This module must
not import prometheus_client: it runs before it, so the children pick file-backed values.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

log = logging.getLogger(__name__)


def multiprocess_dir() -> Path | None:
    """Where this process writes its metric files, or None when it keeps them in memory."""
    value = os.environ.get(MULTIPROC_DIR_ENV)
    return Path(value) if value else None


@contextmanager
def multiprocess_metrics(process: str) -> Iterator[Path]:
    """A fresh metric-file directory for this process and the children it starts; removed after.

    Call before the command imports prometheus_client, which picks file-backed values at
    import time. An operator's PROMETHEUS_MULTIPROC_DIR is used as the parent directory, so
    files of an earlier start never add to this one's totals.
    """
    if "prometheus_client" in sys.modules:
        log.warning(
            "%s: prometheus_client was imported before multiprocess mode was set up; "
            "metrics of this process itself stay in memory",
            process,
        )
    parent = os.environ.get(MULTIPROC_DIR_ENV) or None
    if parent is not None:
        Path(parent).mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix=f"estate-{process}-metrics-", dir=parent))
    previous = os.environ.get(MULTIPROC_DIR_ENV)
    os.environ[MULTIPROC_DIR_ENV] = str(directory)
    log.info("%s: metrics of every process are collected in %s", process, directory)
    try:
        yield directory
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_DIR_ENV, None)
        else:
            os.environ[MULTIPROC_DIR_ENV] = previous
        try:
            shutil.rmtree(directory)
        except OSError as exc:
            log.warning("%s: could not remove metric files in %s: %s", process, directory, exc)


def forget_process(pid: int) -> None:
    """Drop the live gauges of a process that has exited (its counters keep counting)."""
    directory = multiprocess_dir()
    if directory is not None and directory.is_dir():
        from prometheus_client.multiprocess import mark_process_dead

        mark_process_dead(pid, str(directory))
