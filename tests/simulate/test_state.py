"""The state file (identities and counters between runs) and the split of kinds."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fleet.simulate.enrol import plan_kinds
from fleet.simulate.state import SimIdentity, SimulatorError, StateFile, database_label

DB = database_label("postgresql+psycopg://estate:s3cret@db:5432/estate")


def identity(n: int, **extra: object) -> SimIdentity:
    fields = {"serial": f"SIM-{n}", "password": f"pw-{n}", "prison": "MDI", "kind": "tablet"}
    return SimIdentity(device_id=f"MDI-TAB-{n}", **{**fields, **extra})  # type: ignore[arg-type]


def test_the_database_label_hides_the_password() -> None:
    assert "s3cret" not in DB
    assert DB.startswith("postgresql+psycopg://estate:***@db:5432/estate")


def test_saved_identities_load_back_from_a_file_only_the_owner_can_read(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "simulator.json"
    state = StateFile(path, DB)
    state.add([identity(1, boot=3, seq=40, location="MDI-1-1-001"), identity(2)])
    state.save()

    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    loaded = StateFile(path, DB).load().identities
    assert loaded == state.identities
    assert loaded["MDI-TAB-1"].password == "pw-1"
    assert "pw-1" not in repr(loaded["MDI-TAB-1"])


def test_a_running_save_reserves_counters_and_a_clean_save_records_them_exactly(
    tmp_path: Path,
) -> None:
    path = tmp_path / "simulator.json"
    state = StateFile(path, DB)
    ident = identity(1, boot=2, seq=10)
    state.add([ident])

    state.save(seq_reserve=100, boot_reserve=8)
    on_disk = StateFile(path, DB).load().identities["MDI-TAB-1"]
    assert (on_disk.seq, on_disk.boot) == (110, 10)
    assert not state.needs_save(ident, seq_margin=50, boot_margin=4)
    ident.seq = 60
    assert state.needs_save(ident, seq_margin=50, boot_margin=4)

    state.save()
    on_disk = StateFile(path, DB).load().identities["MDI-TAB-1"]
    assert (on_disk.seq, on_disk.boot) == (60, 2)


def test_a_state_file_of_another_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "simulator.json"
    StateFile(path, DB).save()

    with pytest.raises(SimulatorError, match=r"belongs to the database .* --state-file"):
        StateFile(path, database_label("sqlite:///var/estate.db")).load()


def test_an_unreadable_state_file_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "simulator.json"
    path.write_text("{not json")

    with pytest.raises(SimulatorError, match="Move it aside to start afresh"):
        StateFile(path, DB).load()


def test_a_missing_state_file_is_an_empty_start(tmp_path: Path) -> None:
    assert StateFile(tmp_path / "none.json", DB).load().identities == {}


@pytest.mark.parametrize("total", [1, 2, 7, 20, 300, 1501])
def test_kinds_split_to_the_exact_total_in_the_estate_mix(total: int) -> None:
    plan = plan_kinds(total, ["in_cell_phone", "tablet", "laptop"])

    assert sum(plan.values()) == total
    assert plan["in_cell_phone"] >= plan["tablet"] >= plan["laptop"]


def test_a_single_kind_takes_every_device() -> None:
    assert plan_kinds(30, ["kiosk"]) == {"kiosk": 30}
    assert plan_kinds(300, ["in_cell_phone", "tablet", "laptop"]) == {
        "in_cell_phone": 150,
        "tablet": 120,
        "laptop": 30,
    }
