"""`estate keys`: the command-signing key."""

from __future__ import annotations

import click

from fleet.settings import get_settings


@click.group()
def keys() -> None:
    """Command-signing keys (Ed25519). Devices pin the public key at enrolment."""


@keys.command()
def generate() -> None:
    """Print a new private seed to put in ESTATE_SIGNING_KEY (keep it secret)."""
    from fleet.signing import new_seed_b64

    click.echo(new_seed_b64())


@keys.command("public")
def show_public() -> None:
    """Print the public key devices pin at enrolment."""
    from fleet.signing import signing_public_key

    click.echo(signing_public_key(get_settings()))
