"""Fault injection on real services: a broker, database, TSDB and processes of the suite's own,
so each can be restarted, killed or cut off without disturbing anyone else."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from fleet.bench.child import IngestChild
from fleet.broker.acls import Acl
from fleet.broker.dynsec import DynsecClient
from fleet.broker.urls import BrokerAddress
from fleet.context import Context
from fleet.settings import Settings
from tests.chaos.cluster import ThrowawayPostgres
from tests.chaos.ledger import Report, ReportStream, latest_states
from tests.ingest.conftest import wait_for
from tests.services.mosquitto import (
    DynsecBroker,
    Login,
    _find_dynsec_plugin,
    _find_executable,
    free_port,
)
from tests.services.postgres import migrated_context

PUBLISHER_ROLE = "chaos-publisher"


class ChaosBroker(DynsecBroker):
    """Mosquitto of this test alone, with a login that may publish any device's reports."""

    publisher: Login

    @property
    def publisher_address(self) -> BrokerAddress:
        return self.address_for(*self.publisher)

    @property
    def ingest_url(self) -> str:
        return self.url_for(*self.ingest)


@pytest.fixture
def chaos_broker(tmp_path: Path) -> Iterator[ChaosBroker]:
    """A dynamic-security Mosquitto on a free port that this test may stop and start."""
    workdir = tmp_path / "mosquitto"
    workdir.mkdir()
    broker = ChaosBroker(
        workdir=workdir,
        port=free_port(),
        admin=Login("estate-admin", "admin-" + os.urandom(8).hex()),
        ingest=Login("estate-ingest", "ingest-" + os.urandom(8).hex()),
        control=Login("estate-control", "control-" + os.urandom(8).hex()),
    )
    ctrl = _find_executable("mosquitto_ctrl")
    broker.publisher = Login("chaos-publisher", "pub-" + os.urandom(8).hex())
    init = subprocess.run(
        [ctrl, "dynsec", "init", str(workdir / "dynsec.json"), *broker.admin],
        capture_output=True,
        text=True,
        check=False,
    )
    assert init.returncode == 0, init.stdout + init.stderr
    broker.write_config(_find_dynsec_plugin())
    broker.start()
    try:
        with DynsecClient(broker.admin_address) as admin:
            admin.bootstrap_service_roles(*broker.ingest, *broker.control)
            admin.ensure_role(PUBLISHER_ROLE, [Acl("publishClientSend", "estate/v1/dev/+/health")])
            admin.ensure_client(*broker.publisher, [PUBLISHER_ROLE])
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    """A PostgreSQL cluster of this test's own, on a free port, that it may crash and restart."""
    cluster = ThrowawayPostgres()
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


def chaos_context(
    database_url: str, broker: ChaosBroker, tsdb_url: str, data_dir: Path, **overrides: Any
) -> Context:
    """Settings every chaos case shares: its own broker and TSDB, small fast batches."""
    settings: dict[str, Any] = {"ingest_batch_size": 500, "ingest_batch_ms": 50} | overrides
    return migrated_context(
        database_url, data_dir=data_dir, mqtt_url=broker.ingest_url, tsdb_url=tsdb_url, **settings
    )


@contextmanager
def ingest_child(settings: Settings, data_dir: Path, run: str) -> Iterator[IngestChild]:
    """`estate ingest` as a child process (the same `run` keeps the same broker session)."""
    child = IngestChild(settings, run, data_dir, topic_root="")
    try:
        yield child
    finally:
        if child.process.poll() is None:
            child.stop()


def start_stream(
    ctx: Context, broker: ChaosBroker, devices: list[str], per_device: int, rate: float
) -> ReportStream:
    """A report stream, started once ingest is consuming (its first report repeated until seen:
    the same report, so it is still stored once)."""
    stream = ReportStream(broker.publisher_address, devices, per_device, rate=rate)
    first = Report(devices[0], 1, stream.ts(1))

    def _consuming() -> bool:
        stream.publish(first)
        return latest_states(ctx, devices[:1])[devices[0]][0] == 1

    wait_for(_consuming, 30, "ingest to consume")
    stream.start()
    return stream


@contextmanager
def device_state_locked(ctx: Context) -> Iterator[Callable[[], int]]:
    """Hold a lock that blocks writes to device_state (reads go on); yields a count of the
    sessions waiting on it, so a test knows a writer is stuck mid-transaction."""
    with ctx.engine.connect() as holder:
        holder.exec_driver_sql("LOCK TABLE device_state IN SHARE MODE")

        def waiting() -> int:
            with ctx.engine.connect() as probe:
                return int(
                    probe.exec_driver_sql(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    ).scalar_one()
                )

        yield waiting
        holder.rollback()


def run_id() -> str:
    return uuid.uuid4().hex[:10]
