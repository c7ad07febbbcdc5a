"""The simulator against real PostgreSQL and the local Mosquitto, watched by a subscriber."""

from __future__ import annotations

import itertools
import os
import stat
import time

import orjson
from sqlalchemy import func, select

from fleet.context import Context
from fleet.db import transaction
from fleet.devices.models import Credential, Device, EnrolmentToken
from fleet.estate.models import Location
from fleet.simulate.simulator import Simulator
from tests.simulate.conftest import MakeSimulator, Watcher, per_device


def _ids(sim: Simulator) -> set[str]:
    return {d.device_id for d in sim.devices()}


def test_every_device_is_born_reports_rising_seq_and_goes_offline_on_stop(
    make_simulator: MakeSimulator, watcher: Watcher, sim_context: Context
) -> None:
    sim = make_simulator()
    sim.start()
    ids = _ids(sim)
    assert len(ids) == 40

    def three_reports_each() -> bool:
        counts = per_device(watcher.live(ids, "health"))
        return len(counts) == 40 and all(len(v) >= 3 for v in counts.values())

    assert watcher.wait_until(three_reports_each, 20), sim.stats().line()
    sim.stop()
    assert watcher.wait_until(
        lambda: {s.device_id for s in watcher.live(ids, "state") if s.state == "offline"} == ids
    )

    assert watcher.rejected_from(ids) == []
    states = per_device(watcher.live(ids, "state"))
    for device_id in ids:
        sequence = [s.state for s in states[device_id]]
        assert sequence == ["online", "offline"], (device_id, sequence)
        assert states[device_id][0].boot == states[device_id][1].boot >= 1
    for device_id, reports in per_device(watcher.live(ids, "health")).items():
        seqs = [r.seq for r in reports]
        assert all(a < b for a, b in itertools.pairwise(seqs)), (device_id, seqs)
        assert {"cpu", "memory", "storage", "temperature"} <= set(reports[0].metrics)
    stats = sim.stats()
    assert (stats.births, stats.offline, stats.errors) == (40, 40, 0)

    with transaction(sim_context.sessions) as session:
        devices = session.scalars(select(Device).where(Device.id.in_(ids))).all()
        places = dict(session.execute(select(Location.id, Location.kind)).all())
        credentials = session.scalar(
            select(func.count()).select_from(Credential).where(Credential.device_id.in_(ids))
        )
    assert {d.lifecycle for d in devices} == {"enrolled"}
    assert {d.prison_code for d in devices} == {"MDI", "LEI"}
    assert credentials == 40
    for device in devices:
        assert device.location_id is not None
        wanted = "landing" if device.kind == "laptop" else "cell"
        assert places[device.location_id] == wanted, device.id


def test_rerun_reuses_identities_and_seq_keeps_rising(
    make_simulator: MakeSimulator, watcher: Watcher, sim_context: Context
) -> None:
    messages: list[str] = []
    first = make_simulator(prisons=["MDI"], devices_per_prison=6, progress=messages.append)
    first.start()
    ids = _ids(first)
    assert watcher.wait_until(lambda: len(per_device(watcher.live(ids, "health"))) == 6)
    # While running, the state file promises more than anything published so far.
    on_disk = orjson.loads(first.state.path.read_bytes())["devices"]
    reserved = {d["device_id"]: d["seq"] for d in on_disk}
    first.stop()
    assert "enrolled 6/6" in messages
    assert stat.S_IMODE(os.stat(first.state.path).st_mode) == 0o600
    first_run = per_device(watcher.live(ids))
    last_seq = {i: max(s.seq for s in v if s.channel == "health") for i, v in first_run.items()}
    first_boot = {i: max(s.boot for s in v if s.channel == "state") for i, v in first_run.items()}
    assert all(reserved[i] > last_seq[i] for i in ids)
    with transaction(sim_context.sessions) as session:
        tokens_before = session.scalar(select(func.count()).select_from(EnrolmentToken))

    since = time.monotonic()
    messages.clear()
    second = make_simulator(prisons=["MDI"], devices_per_prison=6, progress=messages.append)
    second.start()
    assert _ids(second) == ids
    assert watcher.wait_until(lambda: len(per_device(watcher.live(ids, "health", since))) == 6)
    second.stop()

    assert not any(m.startswith("enrolled") for m in messages), messages
    with transaction(sim_context.sessions) as session:
        assert session.scalar(select(func.count()).select_from(EnrolmentToken)) == tokens_before
    for device_id, seen in per_device(watcher.live(ids, since=since)).items():
        health = [s.seq for s in seen if s.channel == "health"]
        births = [s.boot for s in seen if s.state == "online"]
        assert min(health) > last_seq[device_id]
        assert min(births) > first_boot[device_id]

    messages.clear()
    third = make_simulator(prisons=["MDI"], devices_per_prison=8, progress=messages.append)
    third.prepare()
    assert "enrolled 2/2" in messages
    assert ids < _ids_after_prepare(third)


def _ids_after_prepare(sim: Simulator) -> set[str]:
    return {p.ident.device_id for p in sim.prepare()}


def test_power_cut_drops_a_landing_at_once_and_restore_brings_it_back(
    make_simulator: MakeSimulator, watcher: Watcher
) -> None:
    sim = make_simulator()
    sim.start()
    assert sim.wait_online(10)
    landing = "MDI-1-1"
    cut = {
        d.device_id
        for d in sim.devices()
        if d.location and (d.location == landing or d.location.startswith(landing + "-"))
    }
    others = _ids(sim) - cut
    assert cut
    assert others
    assert watcher.wait_until(lambda: len(per_device(watcher.live(cut, "health"))) == len(cut))

    cut_at = time.monotonic()
    assert sim.power_cut(landing) == len(cut)
    assert watcher.wait_until(
        lambda: {s.device_id for s in watcher.live(cut, "state", cut_at)} == cut, 5
    )
    time.sleep(2.0)  # four report intervals with the power off
    during = watcher.live(cut, since=cut_at)
    wills = [s for s in during if s.channel == "state"]
    assert sorted(s.device_id for s in wills) == sorted(cut)
    assert {s.state for s in wills} == {"lost"}
    for device_id, seen in per_device(during).items():
        # A report already in flight may land just after the cut, but nothing follows the will.
        assert seen[-1].state == "lost", (device_id, seen)
    arrivals = [s.at for s in wills]
    assert max(arrivals) - min(arrivals) < 1.0, "wills should fire together"
    assert len(per_device(watcher.live(others, "health", cut_at + 0.5))) == len(others)

    lost_boot = {s.device_id: s.boot for s in wills}
    last_seq = {
        i: max(s.seq for s in v) for i, v in per_device(watcher.live(cut, "health")).items()
    }
    restored_at = time.monotonic()
    assert sim.restore(landing) == len(cut)

    def back() -> bool:
        after = per_device(watcher.live(cut, since=restored_at))
        return len(after) == len(cut) and all(
            any(s.channel == "health" for s in v) for v in after.values()
        )

    assert watcher.wait_until(back, 10)
    for device_id, seen in per_device(watcher.live(cut, since=restored_at)).items():
        assert seen[0].state == "online"
        assert seen[0].boot > lost_boot[device_id]
        assert min(s.seq for s in seen if s.channel == "health") > last_seq[device_id]
    assert watcher.rejected_from(cut | others) == []


def test_random_faults_and_single_drops_fire_wills_and_devices_return(
    make_simulator: MakeSimulator, watcher: Watcher
) -> None:
    sim = make_simulator(prisons=["LEI"], devices_per_prison=10, fault_rate=1800, mean_outage_s=0.5)
    sim.start()
    ids = _ids(sim)

    def dropped_and_back() -> bool:
        by_device = per_device(watcher.live(ids, "state"))
        returned = 0
        for seen in by_device.values():
            states = [s.state for s in seen]
            if "lost" in states and "online" in states[states.index("lost") :]:
                returned += 1
        return returned >= 3

    assert watcher.wait_until(dropped_and_back, 20), sim.stats().line()
    assert sim.stats().random_drops >= 3

    sim.stop()
    calm = make_simulator(prisons=["LEI"], devices_per_prison=10)
    calm.start()
    assert calm.wait_online(10)
    victim = sorted(ids)[0]
    since = time.monotonic()
    calm.drop_device(victim, down_for_s=1.0)
    assert watcher.wait_until(
        lambda: [s.state for s in watcher.live({victim}, "state", since)] == ["lost", "online"], 10
    )
    assert watcher.rejected_from(ids) == []
