"""The agent's building blocks on their own: counters, backoff, config, identity, metrics."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agents.backoff import Backoff
from agents.config import ConfigError, health_interval_from, resolve_health_interval
from agents.identity import IdentityError, load_identity, parse_mqtt_url, save_identity
from agents.lock import StateDirLock
from agents.metrics import PsutilMetrics, valid_metrics, wifi_signal_dbm
from agents.protocol import METRIC_NAME_RE
from agents.state import Counters, StateError
from tests.agents.support import make_identity

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_agent_loads_no_control_plane_code() -> None:
    probe = (
        "import sys, agents.cli, agents.runner, agents.enrol, agents.metrics\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'fastapi', 'sqlalchemy', 'fleet', 'starlette', 'pydantic'})\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_seq_reservation_never_reuses_a_number_after_a_crash(tmp_path: Path) -> None:
    counters = Counters(tmp_path, seq_block=10)
    assert [counters.next_seq() for _ in range(3)] == [1, 2, 3]
    assert orjson.loads((tmp_path / "counters.json").read_bytes())["seq_reserved"] == 10
    # A crash: no release_unused(). The next run starts above the whole reserved block.
    after_crash = Counters(tmp_path, seq_block=10)
    assert after_crash.next_seq() == 11
    after_crash.release_unused()
    assert Counters(tmp_path, seq_block=10).next_seq() == 12


def test_boot_counter_counts_every_start(tmp_path: Path) -> None:
    assert Counters(tmp_path).start_boot() == 1
    assert Counters(tmp_path).start_boot() == 2


def test_damaged_counters_file_is_reported_not_reset(tmp_path: Path) -> None:
    (tmp_path / "counters.json").write_text('{"boot": "many"}')
    with pytest.raises(StateError, match="boot must be a non-negative integer"):
        Counters(tmp_path)


def test_backoff_grows_with_jitter_up_to_the_cap() -> None:
    backoff = Backoff(initial_s=1, cap_s=60, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(12)]
    assert 0.5 <= delays[0] <= 1
    assert 4 <= delays[3] <= 8
    assert all(30 <= d <= 60 for d in delays[6:])
    assert len(set(delays)) == len(delays)  # jittered, not lock-step
    backoff.reset()
    assert backoff.next_delay() <= 1


def test_health_interval_validation_and_precedence() -> None:
    assert health_interval_from({"health_interval_s": 30}) == 30.0
    assert health_interval_from({}) is None
    for bad in (0, -5, True, "30", float("nan"), 100_000):
        with pytest.raises(ConfigError, match="health_interval_s must be"):
            health_interval_from({"health_interval_s": bad})
    desired, enrolment = {"health_interval_s": 10}, {"health_interval_s": 30}
    assert resolve_health_interval(0.2, desired, enrolment) == 0.2
    assert resolve_health_interval(None, desired, enrolment) == 10
    assert resolve_health_interval(None, {}, enrolment) == 30
    assert resolve_health_interval(None, {}, {"health_interval_s": "soon"}) == 60


def test_identity_round_trip_and_validation(tmp_path: Path) -> None:
    identity = make_identity("dev-1", Ed25519PrivateKey.generate())
    path = save_identity(tmp_path, identity)
    assert path.stat().st_mode & 0o777 == 0o600
    loaded = load_identity(tmp_path)
    assert loaded is not None
    assert loaded.device_id == "dev-1"
    assert loaded.mqtt_url == "mqtt://127.0.0.1:1883"
    assert load_identity(tmp_path / "nowhere") is None
    doc = orjson.loads(path.read_bytes())
    doc["device_id"] = "bad id/with slash"
    path.write_bytes(orjson.dumps(doc))
    with pytest.raises(IdentityError, match="not a valid device id"):
        load_identity(tmp_path)


def test_mqtt_urls() -> None:
    assert parse_mqtt_url("mqtt://broker.example:1884") == ("broker.example", 1884, False)
    assert parse_mqtt_url("mqtts://broker.example") == ("broker.example", 8883, True)
    with pytest.raises(IdentityError, match="must look like"):
        parse_mqtt_url("http://broker.example")


def test_one_agent_per_state_directory(tmp_path: Path) -> None:
    lock = StateDirLock(tmp_path)
    try:
        with pytest.raises(StateError, match="already running"):
            StateDirLock(tmp_path)
    finally:
        lock.release()
    StateDirLock(tmp_path).release()


def test_machine_metrics_use_protocol_names_and_sane_ranges() -> None:
    metrics = PsutilMetrics()()
    assert {"cpu", "memory", "storage", "uptime_s"} <= set(metrics)
    assert all(METRIC_NAME_RE.match(name) for name in metrics)
    assert 0 <= metrics["storage"] <= 100
    assert metrics["uptime_s"] > 0
    if "battery" in metrics:
        assert metrics["charging"] in (0.0, 1.0)


def test_invalid_metrics_are_left_out() -> None:
    raw = {"cpu": 5, "Bad-Name": 1, "nan_value": float("nan"), "flag": True, "text": "x"}
    assert valid_metrics(raw) == {"cpu": 5}  # type: ignore[arg-type]


def test_wifi_signal_from_proc_net_wireless(tmp_path: Path) -> None:
    stats = tmp_path / "wireless"
    stats.write_text(
        "Inter-| sta-|   Quality        |   Discarded packets\n"
        " face | tus | link level noise |  nwid  crypt   frag\n"
        " wlan0: 0000   54.  -56.  -256        0      0      0\n"
    )
    assert wifi_signal_dbm(stats) == -56.0
    assert wifi_signal_dbm(tmp_path / "absent") is None
