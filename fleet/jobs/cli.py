"""`estate jobs`: job templates for the shipped playbooks, and job history at a terminal."""

from __future__ import annotations

import click

from fleet.cli.common import cli_actor, context


@click.group()
def jobs() -> None:
    """Ansible job templates and jobs (the web UI and /api/v1/jobs launch them)."""


@jobs.command("install-templates")
def install_templates() -> None:
    """Create a template for each shipped playbook that has none yet (by name).

    Existing templates are left as they are, so running it again changes nothing."""
    from sqlalchemy import select

    from fleet.db import transaction, utcnow
    from fleet.jobs import catalogue, service
    from fleet.jobs.models import JobTemplate

    ctx = context()
    created = 0
    with transaction(ctx.sessions) as session:
        existing = set(session.scalars(select(JobTemplate.name)))
        for data in catalogue.templates():
            if data.name in existing:
                click.echo(f"kept     {data.name} ({data.playbook})", err=True)
                continue
            service.create_template(session=session, actor=cli_actor(), data=data, now=utcnow())
            click.echo(f"created  {data.name} ({data.playbook})", err=True)
            created += 1
    click.echo(f"{created} template(s) created; launch them from /jobs/templates")


@jobs.command("list")
@click.option("--limit", default=20, show_default=True, help="How many recent jobs to show.")
def list_jobs(limit: int) -> None:
    """The most recent jobs, newest first."""
    from fleet.jobs import queries

    ctx = context()
    with ctx.sessions() as session:
        for job in queries.list_jobs(session=session, scope=None, limit=limit):
            click.echo(
                f"{job.id:>6} {job.created_at:%Y-%m-%d %H:%M} {job.status:<18} "
                f"{job.playbook:<24} {job.launched_by:<16} {','.join(job.prison_codes[:5])}"
            )
