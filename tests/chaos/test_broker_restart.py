"""The broker restarted while reports stream in: nothing lost, nothing doubled.

Mosquitto 2.0 saves ingest's persistent session and its queued reports on SIGTERM, but does not
restore a session's *shared* subscriptions: until ingest reconnects and subscribes again, a
report is routed to nobody and the broker's MQTT 5 PUBACK says so ("no matching subscribers").
The publisher here reads that reason code and sends such reports again, as a device must for
nothing to be lost across a broker restart.
"""

from __future__ import annotations

from pathlib import Path

from tests.chaos.conftest import ChaosBroker, chaos_context, ingest_child, run_id, start_stream
from tests.chaos.ledger import assert_exact
from tests.ingest.conftest import add_devices
from tests.services.victoria import VictoriaServer


def test_broker_restarted_mid_stream_every_report_lands_once(
    chaos_broker: ChaosBroker, pg_url: str, victoria_server: VictoriaServer, tmp_path: Path
) -> None:
    ctx = chaos_context(pg_url, chaos_broker, victoria_server.url, tmp_path)
    devices = add_devices(ctx, 20)
    try:
        with ingest_child(ctx.settings, tmp_path, run_id()) as ingest:
            stream = start_stream(ctx, chaos_broker, devices, per_device=100, rate=600)
            try:
                stream.wait_sent(600)
                # SIGTERM: Mosquitto saves its sessions, including ingest's unread queue.
                chaos_broker.stop()
                stream.wait_sent(900)  # the publisher keeps going into its own queue
                chaos_broker.start()
                ledger = stream.finish()
            finally:
                stream.close()
            assert_exact(ctx, victoria_server, ledger, devices)
            assert ingest.process.poll() is None, "ingest should ride out the restart"
    finally:
        ctx.close()
