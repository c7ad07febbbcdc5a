"""`estate devices`: enrolment tokens and revocation from a terminal."""

from __future__ import annotations

import click

from fleet.cli.common import cli_actor, context
from fleet.enrolment.service import KIND_CODES


@click.group()
def devices() -> None:
    """Enrol devices and revoke lost or stolen ones."""


@devices.command()
@click.option("--prison", required=True, help="Prison code the device joins, e.g. MDI.")
@click.option("--kind", required=True, type=click.Choice(sorted(KIND_CODES)))
@click.option("--location", default=None, help="Location code, e.g. MDI-1-1-001.")
@click.option("--device-id", default=None, help="Bind to a device already registered.")
@click.option("--count", default=1, show_default=True, type=click.IntRange(1, 1000))
@click.option("--ttl", "ttl_s", default=None, type=click.IntRange(60), help="Seconds valid.")
def enrol(
    prison: str,
    kind: str,
    location: str | None,
    device_id: str | None,
    count: int,
    ttl_s: int | None,
) -> None:
    """Create one-time enrolment tokens (one per line) for `estate agent --enrol TOKEN`."""
    from fleet.db import transaction
    from fleet.enrolment.service import EnrolmentError, create_tokens

    ctx = context()
    try:
        with transaction(ctx.sessions) as session:
            created = create_tokens(
                session=session,
                settings=ctx.settings,
                actor=cli_actor(),
                prison_code=prison,
                kind=kind,
                location_path=location,
                device_id=device_id,
                ttl_s=ttl_s,
                count=count,
            )
    except EnrolmentError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"{count} token(s) valid until {created.expires_at:%Y-%m-%d %H:%M} UTC", err=True)
    for token in created.tokens:
        click.echo(token)


@devices.command()
@click.argument("device_id")
@click.option("--reason", required=True, help="Why, for the audit trail (e.g. 'reported lost').")
def revoke(device_id: str, reason: str) -> None:
    """Disconnect a device from the broker at once and refuse it from now on."""
    from fleet.db import transaction
    from fleet.enrolment.service import EnrolmentError, revoke_device

    ctx = context()
    try:
        with transaction(ctx.sessions) as session:
            revoke_device(
                session=session,
                issuer=ctx.issuer,
                device_id=device_id,
                actor=cli_actor(),
                reason=reason,
            )
    except EnrolmentError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"{device_id} revoked")
