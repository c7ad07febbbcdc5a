"""Fresh PostgreSQL databases for tests, migrated to head by the real Alembic migrations."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from fleet.context import Context
from fleet.db import transaction
from fleet.estate.service import seed_prisons
from fleet.migrate import upgrade
from fleet.settings import Settings

ADMIN_DSN = os.environ.get("ESTATE_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _admin(sql: str) -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(sql)


def create_database() -> str:
    """Create an empty database and return its SQLAlchemy URL."""
    name = f"estate_t_{uuid.uuid4().hex[:12]}"
    try:
        _admin(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.fail(f"PostgreSQL is not reachable at {ADMIN_DSN}: {exc}")
    base = ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    return f"{base}/{name}"


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrated_context(url: str, **overrides: object) -> Context:
    settings = Settings(database_url=url, profile="test", **overrides)  # type: ignore[arg-type]
    ctx = Context(settings)
    upgrade(ctx.engine)
    with transaction(ctx.sessions) as session:
        seed_prisons(session=session)
    return ctx


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database dropped after the test."""
    url = create_database()
    yield url
    drop_database(url)


@pytest.fixture
def pg_context(pg_url: str, tmp_path: object) -> Iterator[Context]:
    """A Context on a fresh PostgreSQL database at head with the prisons seeded."""
    ctx = migrated_context(pg_url, data_dir=tmp_path)
    yield ctx
    ctx.close()
