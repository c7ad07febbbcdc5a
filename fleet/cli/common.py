"""Small pieces shared by admin commands."""

from __future__ import annotations

import getpass

import click

from fleet.context import Context
from fleet.settings import get_settings


def cli_actor() -> str:
    """Audit actor for commands run at a terminal: the operating-system user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def context() -> Context:
    """Settings and database for this command; connections are closed when it ends."""
    try:
        ctx = Context(get_settings())
    except ValueError as exc:
        raise click.ClickException(f"settings are not valid: {exc}") from exc
    current = click.get_current_context(silent=True)
    if current is not None:
        current.call_on_close(ctx.close)
    return ctx
