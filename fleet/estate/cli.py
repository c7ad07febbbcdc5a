"""`estate locations`: import, generate and list the location tree of prisons."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from fleet.cli.common import cli_actor, context


@click.group()
def locations() -> None:
    """Prison locations: wings, landings, cells and rooms."""


def _progress(stage: str, done: int, total: int) -> None:
    """Progress on stderr so the summary on stdout stays clean for scripts."""
    if stage == "read":
        click.echo(f"read {done:,} rows", err=True)
    elif total >= 1000 and (done % 1000 == 0 or done == total):
        click.echo(f"{stage} {done:,}/{total:,}", err=True)


@locations.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--prison", default=None, help="Refuse rows for any other prison (e.g. MDI).")
@click.option("--dry-run", is_flag=True, help="Check the file and report, writing nothing.")
def import_command(file: Path, prison: str | None, dry_run: bool) -> None:
    """Import locations from a CSV with columns path,kind,name[,parent][,capacity].

    Every row is checked first; if any row is wrong, all problems are listed with their line
    numbers and nothing is written. Re-importing the same file changes nothing.
    """
    from fleet.db import transaction
    from fleet.estate.locations_import import ImportRefused, import_locations

    ctx = context()
    try:
        with transaction(ctx.sessions) as session:
            result = import_locations(
                session=session,
                data=file.read_bytes(),
                source=file.name,
                actor=cli_actor(),
                only_prison=prison,
                dry_run=dry_run,
                progress=_progress,
            )
    except ImportRefused as exc:
        click.echo(f"{file}: not imported, nothing was written. Fix these and try again:", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(1)
    click.echo(result.summary())


@locations.command()
@click.option("--prison", required=True, help="Prison code, e.g. MDI.")
@click.option("--wings", default=4, show_default=True, type=click.IntRange(1, 50))
@click.option("--landings", default=3, show_default=True, type=click.IntRange(1, 20))
@click.option("--cells", default=20, show_default=True, type=click.IntRange(1, 200))
def generate(prison: str, wings: int, landings: int, cells: int) -> None:
    """Create a regular wing > landing > cell tree (existing locations are kept)."""
    from fleet.audit.service import record
    from fleet.db import transaction
    from fleet.estate.service import generate_locations, get_prison

    ctx = context()
    with transaction(ctx.sessions) as session:
        found = get_prison(session=session, code=prison)
        if found is None:
            raise click.ClickException(f"unknown prison {prison!r}; see /api/v1/prisons")
        added = generate_locations(
            session=session, prison_code=found.code, wings=wings, landings=landings, cells=cells
        )
        record(
            session=session,
            actor=cli_actor(),
            action="locations.generated",
            target_type="prison",
            target_id=found.code,
            prison_code=found.code,
            detail={"wings": wings, "landings": landings, "cells": cells, "added": added},
        )
    click.echo(f"{added} locations added to {found.code}")


@locations.command("list")
@click.option("--prison", required=True, help="Prison code, e.g. MDI.")
@click.option("--kind", default=None, type=click.Choice(["wing", "landing", "cell", "room"]))
def list_command(prison: str, kind: str | None) -> None:
    """Print a prison's locations, one per line: path, kind, capacity, name."""
    from sqlalchemy import select

    from fleet.estate.models import Location
    from fleet.estate.service import get_prison

    ctx = context()
    with ctx.sessions() as session:
        found = get_prison(session=session, code=prison)
        if found is None:
            raise click.ClickException(f"unknown prison {prison!r}; see /api/v1/prisons")
        stmt = select(Location).where(Location.prison_code == found.code).order_by(Location.path)
        if kind:
            stmt = stmt.where(Location.kind == kind)
        shown = 0
        for loc in session.scalars(stmt):
            click.echo(f"{loc.path:<24} {loc.kind:<8} {loc.capacity:>4}  {loc.name}")
            shown += 1
    click.echo(f"{shown} locations in {found.code} ({found.name})", err=True)
