"""Alembic environment: the engine comes from the Config built by fleet.migrate."""

from __future__ import annotations

from alembic import context

import fleet.models  # noqa: F401 - registers every table on the metadata
from fleet.db import Base
from fleet.migrate import include_object

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    include_object=include_object,
)
with context.begin_transaction():
    context.run_migrations()
