"""`estate broker`: the broker identities the platform's own services log in with."""

from __future__ import annotations

import secrets

import click

from fleet.settings import get_settings


@click.group()
def broker() -> None:
    """Broker identities: bootstrap roles for ingest and the control plane.

    Talks to Mosquitto's dynamic security plugin at ESTATE_MQTT_URL, logging in as
    ESTATE_MQTT_ADMIN_USERNAME / ESTATE_MQTT_ADMIN_PASSWORD (the user created by
    `mosquitto_ctrl dynsec init`).
    """


@broker.command(short_help="Create or update the ingest and control-plane logins.")
@click.option(
    "--ingest-username",
    default="estate-ingest",
    show_default=True,
    envvar="ESTATE_MQTT_INGEST_USERNAME",
    help="Broker login for `estate ingest` [env ESTATE_MQTT_INGEST_USERNAME].",
)
@click.option(
    "--ingest-password",
    envvar="ESTATE_MQTT_INGEST_PASSWORD",
    help="Its password [env ESTATE_MQTT_INGEST_PASSWORD].",
)
@click.option(
    "--control-username",
    default="estate-control",
    show_default=True,
    envvar="ESTATE_MQTT_CONTROL_USERNAME",
    help="Broker login for the API and workers (commands, configuration) "
    "[env ESTATE_MQTT_CONTROL_USERNAME].",
)
@click.option(
    "--control-password",
    envvar="ESTATE_MQTT_CONTROL_PASSWORD",
    help="Its password [env ESTATE_MQTT_CONTROL_PASSWORD].",
)
@click.option(
    "--generate-passwords",
    is_flag=True,
    help="Generate random passwords for any not given, and print them once.",
)
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for the broker.")
def bootstrap(
    ingest_username: str,
    ingest_password: str | None,
    control_username: str,
    control_password: str | None,
    generate_passwords: bool,
    timeout: float,
) -> None:
    """Create or update the ingest and control-plane roles and logins (safe to re-run).

    The ingest login may subscribe (also as $share/<group>/...) to every device's health,
    state, cmd/reply and config/reported. The control login may publish every device's cmd
    and config and read their replies. Re-running resets the passwords to those given.

    \b
    Example:
      ESTATE_MQTT_URL=mqtt://broker:1883 ESTATE_MQTT_ADMIN_USERNAME=admin \\
      ESTATE_MQTT_ADMIN_PASSWORD=... estate broker bootstrap --generate-passwords
    """
    from fleet.broker.dynsec import DynsecClient, DynsecError
    from fleet.broker.urls import BrokerUrlError, parse_broker_url

    settings = get_settings()
    if settings.embedded_mqtt:
        raise click.UsageError(
            "ESTATE_MQTT_URL is 'embedded': the in-process demo broker has no identities to "
            "bootstrap. Point ESTATE_MQTT_URL at Mosquitto, e.g. mqtt://broker:1883."
        )
    if not settings.mqtt_admin_username or not settings.mqtt_admin_password:
        raise click.UsageError(
            "set ESTATE_MQTT_ADMIN_USERNAME and ESTATE_MQTT_ADMIN_PASSWORD to the dynamic "
            "security admin (created with `mosquitto_ctrl dynsec init FILE USER PASS`)"
        )
    generated: list[tuple[str, str]] = []
    if not ingest_password:
        if not generate_passwords:
            raise click.UsageError("give --ingest-password (or --generate-passwords)")
        ingest_password = secrets.token_urlsafe(24)
        generated.append((ingest_username, ingest_password))
    if not control_password:
        if not generate_passwords:
            raise click.UsageError("give --control-password (or --generate-passwords)")
        control_password = secrets.token_urlsafe(24)
        generated.append((control_username, control_password))
    try:
        address = parse_broker_url(settings.effective_mqtt_url).with_credentials(
            settings.mqtt_admin_username, settings.mqtt_admin_password
        )
        with DynsecClient(address, timeout_s=timeout) as admin:
            admin.bootstrap_service_roles(
                ingest_username, ingest_password, control_username, control_password
            )
    except (DynsecError, BrokerUrlError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"broker identities ready at {address.redacted()}:")
    click.echo(f"  ingest:        {ingest_username} (role estate-ingest)")
    click.echo(f"  control plane: {control_username} (role estate-control)")
    for username, password in generated:
        click.echo(f"  generated password for {username}: {password}")
    if generated:
        click.echo("Store these now; they are not shown again.")
