"""GET /devices/{id}/health: ranges, steps and their validation, over the SQL history store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fleet.db import transaction
from fleet.devices.models import HealthSample
from fleet.devices.schemas import default_step, parse_step, parse_when
from tests.estate.factories import Api, add_device

START = datetime(2025, 2, 1, 10, 0, tzinfo=UTC)


def _device_with_history(api: Api) -> str:
    with transaction(api.ctx.sessions) as session:
        device_id = add_device(session, prison="MDI", location="MDI-1-1-001", online=True).id
        for minute in range(60):
            session.add(
                HealthSample(
                    device_id=device_id,
                    seq=minute,
                    ts=START + timedelta(minutes=minute, seconds=30),
                    metrics={"battery": 100.0 - minute, "cpu": 10.0},
                )
            )
    return device_id


def test_history_is_averaged_per_step(api: Api) -> None:
    device_id = _device_with_history(api)
    query = "from=2025-02-01T10:00:00Z&to=2025-02-01T11:00:00Z&step=15m"

    response = api.get(f"/api/v1/devices/{device_id}/health?{query}", role="viewer")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["step_s"] == 900
    assert datetime.fromisoformat(body["start"]) == START
    battery = [(datetime.fromisoformat(p["ts"]), p["value"]) for p in body["series"]["battery"]]
    assert battery == [
        (START + timedelta(minutes=15), 93.0),
        (START + timedelta(minutes=30), 78.0),
        (START + timedelta(minutes=45), 63.0),
        (START + timedelta(minutes=60), 48.0),
    ]
    assert {p["value"] for p in body["series"]["cpu"]} == {10.0}


def test_relative_range_and_default_step(api: Api) -> None:
    device_id = _device_with_history(api)

    body = api.get(f"/api/v1/devices/{device_id}/health").json()

    assert body["step_s"] == 300
    span = datetime.fromisoformat(body["end"]) - datetime.fromisoformat(body["start"])
    assert span == timedelta(hours=24)
    assert body["series"] == {}
    week = api.get(f"/api/v1/devices/{device_id}/health?from=-7d&to=-1d").json()
    assert week["step_s"] == 1800


def test_bad_ranges_are_422_naming_the_parameter(api: Api) -> None:
    device_id = _device_with_history(api)
    cases = {
        "from=yesterday": ("query.from", "is not a time"),
        "to=2025-13-01": ("query.to", "is not a time"),
        "from=-1h&to=-2h": ("query.from", "must be earlier than 'to'"),
        "step=5 minutes": ("query.step", "is not a step"),
        "step=0s": ("query.step", "is not a step"),
        "from=-30d&step=1s": ("query.step", "too many"),
    }
    for query, (field, words) in cases.items():
        response = api.get(f"/api/v1/devices/{device_id}/health?{query}")
        assert response.status_code == 422, (query, response.text)
        assert response.json()["errors"][0]["field"] == field, query
        assert words in response.json()["detail"], query


def test_time_parsing_rules() -> None:
    now = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
    assert parse_when("-90m", now) == now - timedelta(minutes=90)
    assert parse_when("-2w", now) == now - timedelta(days=14)
    assert parse_when("now", now) == now
    assert parse_when("2025-05-01T09:00:00", now) == datetime(2025, 5, 1, 9, tzinfo=UTC)
    assert parse_when("2025-05-01T09:00:00+01:00", now) == datetime(2025, 5, 1, 8, tzinfo=UTC)
    assert [parse_step(s) for s in ("30s", "5m", "2h", "1d")] == [30, 300, 7200, 86400]
    assert default_step(3600) == 30
    assert default_step(90 * 86400) == 12 * 3600
    assert default_step(200 * 86400) == 86400
    assert default_step(400 * 86400) > 86400
