"""Migrations build the schema the models describe, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from fleet.db import Base, make_engine
from fleet.migrate import include_object, upgrade
from fleet.settings import Settings


def _assert_matches_models(settings: Settings) -> None:
    engine = make_engine(settings)
    try:
        upgrade(engine)
        upgrade(engine)  # a second run is a no-op, not an error
        with engine.connect() as conn:
            migration = MigrationContext.configure(conn, opts={"include_object": include_object})
            diffs = compare_metadata(migration, Base.metadata)
            tables = set(inspect(conn).get_table_names())
        assert diffs == [], f"models and migrations disagree: {diffs}"
        assert {"device", "device_state", "audit_event", "health_sample"} <= tables
    finally:
        engine.dispose()


def test_migrations_match_models_on_sqlite(tmp_path: Path) -> None:
    _assert_matches_models(Settings(data_dir=tmp_path))


def test_migrations_match_models_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    _assert_matches_models(Settings(database_url=pg_url, data_dir=tmp_path))


@pytest.mark.parametrize("bad", ["sqlite:////nonexistent-dir/x/estate.db"])
def test_unreachable_database_fails_with_the_reason(bad: str, tmp_path: Path) -> None:
    engine = make_engine(Settings(database_url=bad, data_dir=tmp_path))
    try:
        with pytest.raises(Exception, match="unable to open database file"):
            upgrade(engine)
    finally:
        engine.dispose()
