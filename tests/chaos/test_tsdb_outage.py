"""VictoriaMetrics down for a full minute while reports stream in: spooled, then replayed."""

from __future__ import annotations

from pathlib import Path

from tests.chaos.conftest import ChaosBroker, chaos_context, ingest_child, run_id, start_stream
from tests.chaos.ledger import assert_exact, latest_states
from tests.ingest.conftest import add_devices, wait_for
from tests.services.victoria import VictoriaServer

RATE = 50  # reports per second, all through the outage
OUTAGE_S = 60


def test_tsdb_down_for_60_s_is_spooled_and_replayed_exactly(
    chaos_broker: ChaosBroker, pg_url: str, own_victoria: VictoriaServer, tmp_path: Path
) -> None:
    # Batches of a second: a minute's outage leaves about 60 spool files, not 1,200.
    ctx = chaos_context(pg_url, chaos_broker, own_victoria.url, tmp_path, ingest_batch_ms=1000)
    devices = add_devices(ctx, 10)
    try:
        with ingest_child(ctx.settings, tmp_path, run_id()) as ingest:
            # The stream ends a couple of seconds after the outage does.
            per_device = (200 + RATE * OUTAGE_S + 100) // len(devices)
            stream = start_stream(ctx, chaos_broker, devices, per_device, rate=RATE)
            try:
                stream.wait_sent(200)
                own_victoria.stop()
                # Paced by the stream itself: RATE reports a second for OUTAGE_S seconds.
                stream.wait_sent(200 + RATE * OUTAGE_S, timeout_s=OUTAGE_S + 30)
                during = ingest.metrics()
                # Latest state kept up although the TSDB was away...
                newest_sent = stream.sent // len(devices) - 1
                wait_for(
                    lambda: min(s for s, _ in latest_states(ctx, devices).values()) >= newest_sent,
                    10,
                    "latest state to keep up during the outage",
                )
                own_victoria.start()
                ledger = stream.finish()
                ingest.wait_spool_empty(progress=lambda _line: None, timeout_s=60)
            finally:
                stream.close()
            # ...the lines waited on disk, and every one reached the TSDB once it was back.
            assert during.get("estate_ingest_tsdb_spool_files", 0) >= 1
            assert during.get("estate_ingest_tsdb_write_failures_total", 0) >= 1
            assert not list((tmp_path / "tsdb-spool").glob("*.lp"))
            assert_exact(ctx, own_victoria, ledger, devices)
    finally:
        ctx.close()
