"""PostgreSQL stopped dead and started again while reports stream in (a cluster of the test's
own: the machine's shared server is never touched)."""

from __future__ import annotations

from pathlib import Path

from tests.chaos.cluster import ThrowawayPostgres
from tests.chaos.conftest import ChaosBroker, chaos_context, ingest_child, run_id, start_stream
from tests.chaos.ledger import assert_exact
from tests.ingest.conftest import add_devices
from tests.services.victoria import VictoriaServer


def test_postgres_crash_and_restart_mid_stream_every_report_lands_once(
    chaos_broker: ChaosBroker,
    throwaway_postgres: ThrowawayPostgres,
    victoria_server: VictoriaServer,
    tmp_path: Path,
) -> None:
    url = throwaway_postgres.create_database("estate_chaos")
    ctx = chaos_context(url, chaos_broker, victoria_server.url, tmp_path)
    devices = add_devices(ctx, 20)
    try:
        with ingest_child(ctx.settings, tmp_path, run_id()) as ingest:
            stream = start_stream(ctx, chaos_broker, devices, per_device=120, rate=500)
            try:
                stream.wait_sent(500)
                # Immediate mode: every connection cut, no checkpoint, crash recovery at start.
                throwaway_postgres.crash()
                stream.wait_sent(1500)  # two seconds of reports while the database is down
                throwaway_postgres.start()
                ctx.engine.dispose()  # this test's own pooled connections died with the server
                ledger = stream.finish()
            finally:
                stream.close()
            assert_exact(ctx, victoria_server, ledger, devices)
            assert ingest.process.poll() is None, "ingest should ride out the outage"
            assert ingest.metrics().get("estate_ingest_batch_retries_total", 0) >= 1
    finally:
        ctx.close()
