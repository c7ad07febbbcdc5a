"""`estate db`: migrate the schema and seed reference data."""

from __future__ import annotations

import click

from fleet.cli.common import context


@click.group()
def db() -> None:
    """Database schema and reference data."""


@db.command()
def upgrade() -> None:
    """Apply every migration, then seed the estate's prisons (idempotent)."""
    from fleet.db import transaction
    from fleet.estate.service import seed_prisons
    from fleet.migrate import upgrade as run_upgrade

    ctx = context()
    run_upgrade(ctx.engine)
    with transaction(ctx.sessions) as session:
        added = seed_prisons(session=session)
    click.echo(f"database at head; {added} prisons added")
