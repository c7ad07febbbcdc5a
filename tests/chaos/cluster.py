"""A throwaway PostgreSQL cluster of the test's own (Debian's initdb and pg_ctl), so it can be
restarted without touching the machine's shared server."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest

from tests.services.victoria import free_port

POSTGRES_BINS = Path("/usr/lib/postgresql")


def _bin_dir() -> Path:
    """The newest installed server's bin directory (initdb, pg_ctl, postgres)."""
    versions = sorted(
        (p for p in POSTGRES_BINS.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not versions:
        pytest.fail(
            f"no PostgreSQL server binaries under {POSTGRES_BINS} (apt-get install postgresql)"
        )
    return versions[-1]


class ThrowawayPostgres:
    """One cluster in a temporary directory on a free port; stop(), start() and crash() at will."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.port = free_port()
        # PostgreSQL refuses to run as root: then the cluster belongs to the postgres user,
        # in a directory outside pytest's root-only temp tree.
        self.as_postgres = os.geteuid() == 0
        self.root = Path(tempfile.mkdtemp(prefix="estate-chaos-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")

    def _run(self, *args: str, timeout_s: float = 60) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_postgres else []
        done = subprocess.run(
            [*prefix, *args], capture_output=True, text=True, timeout=timeout_s, check=False
        )
        if done.returncode != 0:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            pytest.fail(f"{' '.join(args)} exited {done.returncode}: {done.stderr}\n{tail}")

    def init(self) -> None:
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c fsync=off -c full_page_writes=off -c max_connections=50"
        )
        pg_ctl = str(self.bin / "pg_ctl")
        self._run(pg_ctl, "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def crash(self) -> None:
        """Stop at once, like a power cut: no checkpoint, clients cut off, recovery at start."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def create_database(self, name: str) -> str:
        """Create a database and return its SQLAlchemy URL."""
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def remove(self) -> None:
        if self.running():
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
