"""`estate demo`: the whole estate on one machine, with simulated devices reporting live."""

from __future__ import annotations

import contextlib
import logging
import secrets
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

import click
import uvicorn

from fleet.settings import get_settings

log = logging.getLogger(__name__)

DEMO_PRISONS = ("MDI", "LEI", "BMI", "WWI", "PVI")
DEMO_PASSWORD_BYTES = 9
# (username, role, caseload): one account per user group, so each home page can be seen.
DEMO_PEOPLE = (
    ("admin", "estate-admin", ()),
    ("rollout", "rollout-manager", ()),
    ("support", "it-support", DEMO_PRISONS),
    ("facilities", "facilities", ("MDI",)),
    ("viewer", "viewer", ("MDI", "LEI")),
)


class _Server(uvicorn.Server):
    """Uvicorn that leaves signals to us, so the simulator and ingest shut down cleanly."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _err(message: str) -> None:
    click.echo(message, err=True)


def prepare_people(ctx: Any, password: str, demo_token: str) -> str:
    """Create (or reset) the demo accounts; returns the admin API token."""
    from sqlalchemy import select

    from fleet.audit.service import record
    from fleet.auth.models import ApiToken
    from fleet.auth.service import create_user, get_user, hash_password, issue_token, token_hash
    from fleet.db import transaction

    with transaction(ctx.sessions) as session:
        admin_token = ""
        for username, role, caseload in DEMO_PEOPLE:
            user = get_user(session=session, username=username)
            if user is None:
                user = create_user(
                    session=session,
                    username=username,
                    role=role,
                    prisons=caseload,
                    password=password,
                )
            else:
                user.password_hash = hash_password(password)
            record(
                session=session,
                actor="demo",
                action="user.demo_password_set",
                target_type="user",
                target_id=username,
            )
            if username == "admin":
                if demo_token:
                    exists = session.scalars(
                        select(ApiToken).where(ApiToken.token_hash == token_hash(demo_token))
                    ).first()
                    admin_token = (
                        demo_token
                        if exists
                        else issue_token(session=session, user=user, name="demo", token=demo_token)
                    )
                else:
                    admin_token = issue_token(session=session, user=user, name="demo")
        return admin_token


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--prisons",
    default=",".join(DEMO_PRISONS),
    show_default=True,
    help="Comma-separated prison codes to simulate.",
)
@click.option("--devices-per-prison", default=60, show_default=True, type=click.IntRange(1, 2000))
@click.option(
    "--interval",
    default=15.0,
    show_default=True,
    type=click.FloatRange(1, 3600),
    help="Seconds between health reports from each simulated device.",
)
@click.option(
    "--fault-rate",
    default=0.002,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Chance per report that a device drops off for a while.",
)
def demo(
    host: str,
    port: int,
    prisons: str,
    devices_per_prison: int,
    interval: float,
    fault_rate: float,
) -> None:
    """Run API, ingest, an in-process broker and simulated devices of real prisons.

    Needs nothing but Python: SQLite in ./var, an embedded MQTT broker, Celery tasks in-process.
    Set ESTATE_DATABASE_URL, ESTATE_MQTT_URL or ESTATE_TSDB_URL to use real services instead.
    ESTATE_DEMO_TOKEN fixes the admin API token so scripts can drive the demo.
    """
    from fleet.app import create_app
    from fleet.broker.embedded import EmbeddedBroker, supports_shared_subscriptions
    from fleet.cli.demo_content import seed_demo_content
    from fleet.context import Context
    from fleet.db import transaction
    from fleet.estate.service import seed_prisons
    from fleet.ingest.pipeline import IngestPipeline, PipelineOptions
    from fleet.migrate import upgrade
    from fleet.simulate.simulator import Simulator

    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # amqtt logs a warning per late PUBACK while devices disconnect; not actionable here.
    logging.getLogger("amqtt").setLevel(logging.ERROR)
    settings = get_settings()
    codes = [c.strip().upper() for c in prisons.split(",") if c.strip()]
    ctx = Context(settings)
    _err("preparing the database ...")
    upgrade(ctx.engine)
    with transaction(ctx.sessions) as session:
        seed_prisons(session=session)
    password = secrets.token_urlsafe(DEMO_PASSWORD_BYTES)
    admin_token = prepare_people(ctx, password, settings.demo_token)

    broker = None
    if settings.embedded_mqtt:
        broker = EmbeddedBroker.from_settings(settings)
        broker.start()
        _err(f"embedded MQTT broker on {settings.effective_mqtt_url}")
    pipeline = IngestPipeline(
        ctx,
        PipelineOptions(
            client_id="estate-demo-ingest", shared=supports_shared_subscriptions(settings)
        ),
    )
    ingest_thread = threading.Thread(target=pipeline.run, name="ingest", daemon=True)
    ingest_thread.start()
    if not pipeline.wait_ready(30):
        raise click.ClickException("ingest could not subscribe to the broker within 30 s")

    simulator = Simulator(
        settings,
        codes,
        devices_per_prison,
        interval,
        seed=1,
        fault_rate=fault_rate,
        context=ctx,
        progress=_err,
    )
    _err(f"enrolling and connecting {len(codes) * devices_per_prison} simulated devices ...")
    try:
        simulator.start()
    except Exception as exc:
        pipeline.stop()
        raise click.ClickException(f"simulator failed to start: {exc}") from exc
    # After the simulator, which gives each prison its wings, landings and cells.
    seed_demo_content(ctx, codes, devices_per_prison, _err)

    base = f"http://{host}:{port}"
    click.echo(
        "\n".join(
            [
                "",
                f"Estate demo running on {base}",
                f"  prisons: {', '.join(codes)}; {len(codes) * devices_per_prison} devices "
                f"reporting every {interval:g} s",
                f"  sign in as admin, rollout, support, facilities or viewer; password: {password}",
                f"  admin API token: {admin_token}",
                f"  try: curl -H 'Authorization: Bearer {admin_token}' {base}/api/v1/prisons",
                "  Ctrl+C stops everything.",
                "",
            ]
        )
    )
    sys.stdout.flush()
    server = _Server(
        uvicorn.Config(create_app(settings), host=host, port=port, log_level="warning")
    )
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, server.handle_exit)
    try:
        server.run()
    finally:
        _err("stopping ...")
        simulator.stop()
        pipeline.stop()
        ingest_thread.join(timeout=15)
        if broker is not None:
            broker.stop()
        ctx.close()
