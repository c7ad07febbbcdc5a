"""Property tests of the device protocol parsers: any bytes in, a report or Rejected out."""

# ruff: noqa: PT017 - asserting on the refusal is the point of these properties

from __future__ import annotations

import json
import math

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.protocol import (
    METRIC_NAME_RE,
    HealthReport,
    Rejected,
    StateReport,
    parse_health,
    parse_state,
    parse_topic,
)

NOW = 1_800_000_000.0
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_escape_as_anything_but_rejected(payload: bytes) -> None:
    for parse in (parse_health, parse_state):
        try:
            report = parse("MDI-TAB-000001", payload, now=NOW)
        except Rejected as exc:
            assert exc.reason
        else:
            assert isinstance(report, HealthReport | StateReport)


@settings(max_examples=400, deadline=None)
@given(JSON)
def test_arbitrary_json_documents_are_validated_not_trusted(doc: object) -> None:
    payload = json.dumps(doc).encode()  # stdlib: also big integers, which devices may send
    try:
        report = parse_health("MDI-TAB-000001", payload, now=NOW)
    except Rejected as exc:
        assert exc.reason
        return
    assert report.seq >= 0
    assert report.ts <= NOW + 300
    for name, value in report.metrics.items():
        assert METRIC_NAME_RE.match(name)
        assert math.isfinite(value)


@settings(max_examples=300, deadline=None)
@given(
    seq=st.integers(min_value=0, max_value=2**63 - 1),
    ts=st.floats(min_value=946684800, max_value=NOW, allow_nan=False),
    metrics=st.dictionaries(
        st.from_regex(METRIC_NAME_RE, fullmatch=True),
        st.floats(allow_nan=False, allow_infinity=False, width=32),
        max_size=10,
    ),
)
def test_every_well_formed_report_is_accepted_unchanged(
    seq: int, ts: float, metrics: dict[str, float]
) -> None:
    payload = orjson.dumps({"seq": seq, "ts": ts, "metrics": metrics})
    report = parse_health("MDI-TAB-000001", payload, now=NOW)
    assert report.seq == seq
    assert report.ts == ts
    assert report.metrics == {k: float(v) for k, v in metrics.items()}


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=200))
def test_topic_parser_accepts_only_the_device_subtree(name: str) -> None:
    try:
        device_id, channel = parse_topic(name)
    except Rejected as exc:
        assert exc.reason in {"bad_topic", "bad_device_id"}
        return
    assert name == f"estate/v1/dev/{device_id}/{channel}"
    assert "/" not in device_id
    assert "+" not in device_id
    assert "#" not in device_id
