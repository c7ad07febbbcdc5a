"""Coverage-guided fuzzing (atheris, libFuzzer) of the MQTT topic and payload parsers.

Each input is a topic line and a payload. Run by tests/fuzz/test_atheris_protocol.py for a
bounded number of runs; by hand for longer, from a seed corpus:
    .venv/bin/python tests/fuzz/atheris_protocol.py --write-seeds corpus/
    .venv/bin/python tests/fuzz/atheris_protocol.py -max_total_time=600 corpus/
Anything but a parsed report or `Rejected` escaping a parser is a crash, saved as crash-<sha1>.
"""

# ruff: noqa: PT017 - asserting on the refusal is the point of a fuzz target

from __future__ import annotations

import math
import sys

import atheris

with atheris.instrument_imports():
    from agents.protocol import (
        METRIC_NAME_RE,
        Rejected,
        load_public_key,
        parse_health,
        parse_state,
        parse_topic,
        verify_envelope,
    )

NOW = 1_800_000_000.0
PUBLIC = load_public_key("A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=")


SEEDS = (
    b"estate/v1/dev/MDI-TAB-000001/health\n"
    b'{"seq": 7, "ts": 1799999990.5, "metrics": {"battery": 81.5, "cpu": 3}}',
    b"estate/v1/dev/LEI-PHN-000002/state\n"
    b'{"state": "online", "boot": 3, "agent": "1.2.0", "config_version": 4, "ts": 1799999999}',
    b"estate/v1/dev/MDI-TAB-000001/cmd\n"
    b'{"payload": {"device_id": "MDI-TAB-000001", "exp": 1800000300, "nonce": "n"}, "sig": "AA=="}',
)


def write_seeds(directory: str) -> None:
    """A starting corpus of well-formed messages, one file each: topic line, then payload."""
    from pathlib import Path

    for number, seed in enumerate(SEEDS):
        (Path(directory) / f"seed-{number}").write_bytes(seed)


def one_input(data: bytes) -> None:
    raw_topic, _, payload = data.partition(b"\n")
    topic = raw_topic.decode("utf-8", errors="replace")
    try:
        device_id, channel = parse_topic(topic)
    except Rejected:
        device_id, channel = "MDI-TAB-000001", "health"
    else:
        assert topic == f"estate/v1/dev/{device_id}/{channel}"
    try:
        report = parse_health(device_id, payload, now=NOW)
    except Rejected as exc:
        assert exc.reason
    else:
        assert report.seq >= 0
        assert report.ts <= NOW + 300
        assert all(METRIC_NAME_RE.match(k) and math.isfinite(v) for k, v in report.metrics.items())
    try:
        parse_state(device_id, payload, now=NOW)
    except Rejected as exc:
        assert exc.reason
    try:
        verify_envelope(PUBLIC, device_id, payload, now=NOW)
    except Rejected as exc:
        assert exc.reason
    else:
        raise AssertionError("an unsigned envelope verified")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--write-seeds":
        write_seeds(sys.argv[2])
        return
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
