"""With Mosquitto's dynamic security, every simulated device logs in as its own identity."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from fleet.context import Context
from fleet.simulate.simulator import Simulator
from tests.services.postgres import migrated_context
from tests.simulate.conftest import Watcher, per_device

if TYPE_CHECKING:
    from tests.services.mosquitto import DynsecBroker


@pytest.fixture
def dynsec_context(pg_url: str, tmp_path: Path, dynsec_broker: DynsecBroker) -> Iterator[Context]:
    ctx = migrated_context(
        pg_url,
        data_dir=tmp_path,
        mqtt_url=f"mqtt://{dynsec_broker.host}:{dynsec_broker.port}",
        mqtt_credentials="dynsec",
        mqtt_admin_username=dynsec_broker.admin.username,
        mqtt_admin_password=dynsec_broker.admin.password,
    )
    yield ctx
    ctx.close()


def test_each_device_logs_in_as_itself_and_a_revoked_one_is_refused(
    dynsec_context: Context, dynsec_broker: DynsecBroker
) -> None:
    watcher = Watcher(dynsec_broker.address_for(*dynsec_broker.ingest))
    sim = Simulator(
        dynsec_context.settings, ["MDI"], 6, interval=0.5, seed=3, context=dynsec_context
    )
    try:
        sim.start()
        ids = {d.device_id for d in sim.devices()}
        assert watcher.wait_until(lambda: len(per_device(watcher.live(ids, "health"))) == 6)
        log = dynsec_broker.log_path.read_text()
        for device_id in ids:
            assert f"as {device_id} (p5, c1, k60, u'{device_id}')" in log

        victim = sorted(ids)[0]
        dynsec_context.issuer.revoke(victim)
        assert watcher.wait_until(lambda: sim.stats().refusals >= 1, 10), sim.stats().line()
        cut_off = time.monotonic()
        time.sleep(1.5)
        assert watcher.live({victim}, "health", cut_off) == []
        assert len(per_device(watcher.live(ids - {victim}, "health", cut_off))) == 5
        assert "not authorized" in sim.stats().last_error.lower()

        dynsec_context.issuer.restore(victim)
        assert watcher.wait_until(
            lambda: any(s.state == "online" for s in watcher.live({victim}, "state", cut_off)), 15
        )
        assert sim.wait_online(5)
    finally:
        sim.stop()
        watcher.close()
