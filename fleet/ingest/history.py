"""Health history of one device as per-metric series, from the TSDB or from health_sample.

Each point at time t is the average of the reports in (t - step, t], with t running from
`start` to `end` in steps of `step_s` (the PromQL convention, applied to both stores).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.orm import Session

from fleet.ingest.tsdb import MEASUREMENT
from fleet.settings import Settings

MAX_POINTS = 11_000
SERIES_PREFIX = f"{MEASUREMENT}_"

Series = dict[str, list[tuple[datetime, float]]]


class HistoryUnavailable(RuntimeError):
    """The time-series database could not answer."""


def _check_range(start: datetime, end: datetime, step_s: int) -> tuple[int, int]:
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must include a time zone (for example 2024-05-01T09:00Z)")
    if step_s < 1:
        raise ValueError("step must be at least 1 second")
    start_s, end_s = int(start.timestamp()), int(end.timestamp())
    if end_s <= start_s:
        raise ValueError("end must be later than start")
    points = (end_s - start_s) // step_s + 1
    if points > MAX_POINTS:
        needed = -(-(end_s - start_s) // (MAX_POINTS - 1))
        raise ValueError(
            f"{end_s - start_s} s at a step of {step_s} s is {points} points per metric, more "
            f"than {MAX_POINTS:,}: use a step of at least {needed} s or a shorter range"
        )
    return start_s, end_s


def query_health(
    settings: Settings,
    *,
    session: Session,
    device_id: str,
    start: datetime,
    end: datetime,
    step_s: int,
) -> Series:
    """Metric name -> [(time, average)], from VictoriaMetrics when configured, else SQL."""
    start_s, end_s = _check_range(start, end, step_s)
    if settings.tsdb_url:
        return _from_tsdb(settings, device_id, start_s, end_s, step_s)
    return _from_samples(session, device_id, start_s, end_s, step_s)


def _promql_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _from_tsdb(settings: Settings, device_id: str, start_s: int, end_s: int, step_s: int) -> Series:
    selector = f'{{__name__=~"{SERIES_PREFIX}.+",device={_promql_string(device_id)}}}'
    params: dict[str, Any] = {
        "query": f"avg_over_time({selector}[{step_s}s]) keep_metric_names",
        "start": start_s,
        "end": end_s,
        "step": f"{step_s}s",
    }
    headers = {"Authorization": f"Token {settings.tsdb_token}"} if settings.tsdb_token else {}
    url = settings.tsdb_url.rstrip("/") + "/api/v1/query_range"
    try:
        response = httpx.get(url, params=params, headers=headers, timeout=15.0)
        response.raise_for_status()
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise HistoryUnavailable(f"health history from {settings.tsdb_url} failed: {exc}") from exc
    if body.get("status") != "success":
        raise HistoryUnavailable(f"health history from {settings.tsdb_url}: {body.get('error')}")
    series: Series = {}
    for item in body["data"]["result"]:
        name = item["metric"].get("__name__", "")
        metric = name.removeprefix(SERIES_PREFIX) if name.startswith(SERIES_PREFIX) else name
        series[metric] = [
            (datetime.fromtimestamp(float(ts), UTC), float(value)) for ts, value in item["values"]
        ]
    return series


_BUCKETS_SQL = {
    "postgresql": """
        SELECT ceil((extract(epoch FROM s.ts) - :start) / :step)::bigint AS k,
               m.key, avg(m.value::double precision)
        FROM health_sample AS s, jsonb_each_text(s.metrics) AS m(key, value)
        WHERE s.device_id = :device_id
          AND s.ts > to_timestamp(:lower) AND s.ts <= to_timestamp(:end)
        GROUP BY k, m.key
        ORDER BY k
    """,
    "sqlite": """
        SELECT (CAST(strftime('%s', s.ts) AS INTEGER) - :start + :step - 1) / :step AS k,
               m.key, avg(m.value)
        FROM health_sample AS s, json_each(s.metrics) AS m
        WHERE s.device_id = :device_id AND s.ts > :lower_text AND s.ts < :upper_text
        GROUP BY k, m.key
        ORDER BY k
    """,
}


def _sqlite_text(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _from_samples(
    session: Session, device_id: str, start_s: int, end_s: int, step_s: int
) -> Series:
    dialect = session.get_bind().dialect.name
    sql = _BUCKETS_SQL.get(dialect)
    if sql is None:
        raise RuntimeError(f"health history supports PostgreSQL and SQLite, not {dialect}")
    rows = session.execute(
        text(sql),
        {
            "device_id": device_id,
            "start": start_s,
            "end": end_s,
            "lower": start_s - step_s,
            "step": step_s,
            # SQLite keeps UTC timestamps as text in this format, so ranges use the index.
            "lower_text": _sqlite_text(start_s - step_s),
            "upper_text": _sqlite_text(end_s + 1),
        },
    )
    series: Series = {}
    for bucket, metric, average in rows:
        when = datetime.fromtimestamp(start_s + int(bucket) * step_s, UTC)
        series.setdefault(metric, []).append((when, float(average)))
    return series
