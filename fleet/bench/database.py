"""A throwaway PostgreSQL database per bench run, beside the configured one."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import SQLAlchemyError

from fleet.settings import Settings

Progress = Callable[[str], None]


class BenchError(Exception):
    """The bench cannot run as asked; the message says what to change."""


@contextmanager
def bench_database(
    settings: Settings, *, purpose: str, keep: bool = False, progress: Progress
) -> Iterator[Settings]:
    """Settings pointing at a fresh database named for `purpose`; dropped afterwards unless kept."""
    url = make_url(settings.effective_database_url)
    if url.get_backend_name() != "postgresql":
        raise BenchError(
            f"estate bench {purpose} needs PostgreSQL: set ESTATE_DATABASE_URL to "
            "postgresql+psycopg://user@host/db on a server where that login may create databases "
            "(the bench makes a database of its own beside it)"
        )
    name = f"estate_bench_{purpose}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        except SQLAlchemyError as exc:
            raise BenchError(f"cannot create a bench database on {url.host}: {exc}") from exc
        progress(f"created database {name}")
        try:
            yield settings.model_copy(
                update={"database_url": url.set(database=name).render_as_string(False)}
            )
        finally:
            if keep:
                progress(f"kept database {name}")
            else:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                progress(f"dropped database {name}")
    finally:
        admin.dispose()
