"""`estate users`: people, roles, caseloads and API tokens."""

from __future__ import annotations

import click

from fleet.auth.models import ROLES
from fleet.cli.common import cli_actor, context


@click.group()
def users() -> None:
    """Manage people, their roles, caseloads (prisons they may see) and API tokens."""


@users.command()
@click.option("--username", required=True, help="Lowercase login name, e.g. j.smith")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What the person may do.")
@click.option(
    "--prison",
    "prisons",
    multiple=True,
    help="Prison code in their caseload (repeat for several). None: the whole estate.",
)
@click.option("--name", "display_name", default="", help="Full name shown in the UI.")
@click.option(
    "--password",
    default=None,
    help="Web sign-in password (12+ chars). Omit for a token-only account; use "
    "--prompt-password to type it without leaving it in shell history.",
)
@click.option("--prompt-password", is_flag=True, help="Ask for the password interactively.")
def create(
    username: str,
    role: str,
    prisons: tuple[str, ...],
    display_name: str,
    password: str | None,
    prompt_password: bool,
) -> None:
    """Create a user and print their API token (the last line of output; shown once)."""
    from fleet.audit.service import record
    from fleet.auth.service import AccountError, create_user, issue_token
    from fleet.db import transaction

    if prompt_password:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    ctx = context()
    try:
        with transaction(ctx.sessions) as session:
            user = create_user(
                session=session,
                username=username,
                role=role,
                prisons=prisons,
                password=password,
                display_name=display_name,
            )
            token = issue_token(session=session, user=user, name="cli")
            record(
                session=session,
                actor=cli_actor(),
                action="user.created",
                target_type="user",
                target_id=user.username,
                detail={"role": role, "caseload": user.prison_codes},
            )
    except AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    scope = ", ".join(user.prison_codes) or "whole estate"
    click.echo(f"created {user.username} ({role}; caseload: {scope})", err=True)
    click.echo("API token (store it now; it is not shown again):", err=True)
    click.echo(token)


@users.command("token")
@click.option("--username", required=True)
@click.option("--name", default="cli", help="Label to recognise the token later.")
def new_token(username: str, name: str) -> None:
    """Issue an additional API token for an existing user (printed as the last line)."""
    from fleet.audit.service import record
    from fleet.auth.service import get_user, issue_token
    from fleet.db import transaction

    ctx = context()
    with transaction(ctx.sessions) as session:
        user = get_user(session=session, username=username)
        if user is None:
            raise click.ClickException(f"no user {username!r}; list users with `estate users list`")
        token = issue_token(session=session, user=user, name=name)
        record(
            session=session,
            actor=cli_actor(),
            action="user.token_issued",
            target_type="user",
            target_id=user.username,
            detail={"name": name},
        )
    click.echo(token)


@users.command("list")
def list_users() -> None:
    """List users with their role and caseload."""
    from sqlalchemy import select

    from fleet.auth.models import User

    ctx = context()
    with ctx.sessions() as session:
        for user in session.scalars(select(User).order_by(User.username)):
            scope = ",".join(user.prison_codes) or "*"
            state = "" if user.active else " (disabled)"
            click.echo(f"{user.username:<24} {user.role:<16} {scope}{state}")
