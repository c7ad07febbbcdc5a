"""Run Alembic migrations programmatically against the configured database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).parent / "migrations"
# Indexes made by hand-written migrations (PostgreSQL-only), unknown to the models.
UNMODELLED_INDEX_SUFFIXES = ("_trgm",)


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Autogenerate filter: leave the hand-written PostgreSQL indexes alone."""
    return not (type_ == "index" and reflected and (name or "").endswith(UNMODELLED_INDEX_SUFFIXES))


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    cfg = alembic_config(engine)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def revision(engine: Engine, message: str, rev_id: str | None = None) -> None:
    """Autogenerate a new revision from the models (developer tool)."""
    cfg = alembic_config(engine)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.revision(cfg, message=message, autogenerate=True, rev_id=rev_id)
