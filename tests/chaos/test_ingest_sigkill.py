"""`estate ingest` killed with SIGKILL in the middle of a batch, then started again."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.chaos.conftest import (
    ChaosBroker,
    chaos_context,
    device_state_locked,
    ingest_child,
    run_id,
    start_stream,
)
from tests.chaos.ledger import assert_exact, latest_states
from tests.ingest.conftest import add_devices, wait_for
from tests.services.victoria import VictoriaServer


def test_ingest_killed_mid_batch_loses_and_doubles_nothing(
    chaos_broker: ChaosBroker, pg_url: str, victoria_server: VictoriaServer, tmp_path: Path
) -> None:
    ctx = chaos_context(pg_url, chaos_broker, victoria_server.url, tmp_path)
    devices = add_devices(ctx, 20)
    run = run_id()  # the restarted process takes the same client id, so the same session
    try:
        with ingest_child(ctx.settings, tmp_path, run) as first:
            stream = start_stream(ctx, chaos_broker, devices, per_device=100, rate=500)
            stream.wait_sent(500)
            # Writes to device_state wait on a lock: the batch in hand is received, its
            # transaction open and nothing acknowledged when the process dies.
            with device_state_locked(ctx) as waiting:
                wait_for(lambda: waiting() >= 1, 20, "ingest to block inside a batch")
                at_kill = latest_states(ctx, devices)
                first.process.send_signal(signal.SIGKILL)
                assert first.process.wait(10) == -signal.SIGKILL
            # The open transaction died with the connection: nothing of that batch landed.
            assert latest_states(ctx, devices) == at_kill
            assert max(seq for seq, _ in at_kill.values()) < 100
        stream.wait_sent(1200)  # published while no ingest runs: queued in its session
        with ingest_child(ctx.settings, tmp_path, run) as second:
            try:
                ledger = stream.finish()
            finally:
                stream.close()
            assert_exact(ctx, victoria_server, ledger, devices)
            assert second.process.poll() is None
    finally:
        ctx.close()
