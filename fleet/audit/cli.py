"""`estate audit`: verify and inspect the audit trail."""

from __future__ import annotations

import sys

import click

from fleet.cli.common import context


@click.group()
def audit() -> None:
    """Inspect and verify the append-only, hash-chained audit trail."""


@audit.command()
def verify() -> None:
    """Recompute every event's hash; name the first event that was altered or removed."""
    from fleet.audit.service import verify as run_verify

    ctx = context()
    with ctx.sessions() as session:
        result = run_verify(session=session)
    if result.ok:
        click.echo(f"audit trail intact: {result.checked} events verified")
        return
    click.echo(
        f"audit trail ALTERED: event {result.first_bad_id}: {result.problem} "
        f"({result.checked} events before it verified). Restore that row from backup and "
        "investigate who had write access to the database.",
        err=True,
    )
    sys.exit(1)


@audit.command("list")
@click.option("--limit", default=20, show_default=True, help="How many recent events to show.")
@click.option("--target", default=None, help="Only events about this target id (e.g. a device).")
def list_events(limit: int, target: str | None) -> None:
    """Show the most recent audit events, newest first."""
    from sqlalchemy import select

    from fleet.audit.models import AuditEvent

    ctx = context()
    with ctx.sessions() as session:
        stmt = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
        if target:
            stmt = stmt.where(AuditEvent.target_id == target)
        for e in session.scalars(stmt):
            click.echo(
                f"{e.id:>6} {e.ts:%Y-%m-%d %H:%M:%S} {e.actor:<16} {e.action:<22} "
                f"{e.target_type}:{e.target_id} {e.prison_code or '-'}"
            )
