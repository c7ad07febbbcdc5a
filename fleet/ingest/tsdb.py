"""Health history to the time-series database as InfluxDB line protocol, spooled when it is down.

One line per report: measurement `device_health`, tags device/kind/prison, one field per
metric, timestamped with the report's own `ts` (VictoriaMetrics names the series
`device_health_<metric>`). Batches go out pre-serialised through influxdb-client's synchronous
write API; a failed batch is spooled to disk and the spool is replayed, oldest first, before
anything new is sent, so history stays in order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from fleet.ingest.classify import AcceptedHealth
from fleet.ingest.metrics import IngestMetrics
from fleet.ingest.spool import Spool
from fleet.settings import Settings

log = logging.getLogger(__name__)

MEASUREMENT = "device_health"
# The TSDB read these as bad data: retrying cannot help, so the batch is set aside.
INVALID_STATUSES = frozenset({400, 413, 422})
_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})


def _tag(value: str) -> str:
    return value.translate(_TAG_ESCAPES)


def health_lines(items: Sequence[AcceptedHealth]) -> list[str]:
    """Line protocol for each report that has metrics (nanosecond timestamps)."""
    lines = []
    suffixes: dict[tuple[str, str], str] = {}
    for item in items:
        report = item.report
        if not report.metrics:
            continue
        key = (item.device.kind, item.device.prison_code)
        suffix = suffixes.get(key)
        if suffix is None:
            suffix = suffixes[key] = f",kind={_tag(key[0])},prison={_tag(key[1])} "
        fields = ",".join(f"{name}={value!r}" for name, value in report.metrics.items())
        # Device ids are [A-Za-z0-9_-] (checked by the protocol), so they need no escaping.
        lines.append(
            f"{MEASUREMENT},device={report.device_id}{suffix}{fields} {round(report.ts * 1e9)}"
        )
    return lines


class TsdbWriter:
    """Writes line-protocol batches, falling back to the disk spool and replaying it later."""

    def __init__(
        self,
        *,
        url: str,
        token: str,
        org: str,
        bucket: str,
        spool: Spool,
        metrics: IngestMetrics,
        retry_interval_s: float = 5.0,
        timeout_ms: int = 10_000,
        replay_budget_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.org = org
        self.bucket = bucket
        self.spool = spool
        self.metrics = metrics
        self.retry_interval_s = retry_interval_s
        self.replay_budget_s = replay_budget_s
        self._clock = clock
        self._client = InfluxDBClient(url=url, token=token or "unused", org=org, timeout=timeout_ms)
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)
        self._retry_at = 0.0
        self._failing = False
        self._publish_spool_size()

    @classmethod
    def from_settings(
        cls, settings: Settings, metrics: IngestMetrics, **kwargs: object
    ) -> TsdbWriter:
        spool = Spool(Path(settings.data_dir) / "tsdb-spool")
        return cls(
            url=settings.tsdb_url,
            token=settings.tsdb_token,
            org=settings.tsdb_org,
            bucket=settings.tsdb_bucket,
            spool=spool,
            metrics=metrics,
            **kwargs,  # type: ignore[arg-type]
        )

    def write(self, lines: Sequence[str]) -> None:
        """Send a batch now, or spool it durably; returns once it is one or the other."""
        if lines:
            data = ("\n".join(lines)).encode()
            send_now = not self.spool and self._clock() >= self._retry_at
            if not send_now or self._send(data, source="batch") == "failed":
                self._to_spool(data)
        self.replay()

    def replay(self) -> None:
        """Send spooled batches oldest first, for at most `replay_budget_s` per call."""
        if not self.spool or self._clock() < self._retry_at:
            return
        deadline = self._clock() + self.replay_budget_s
        while self.spool and self._clock() < deadline:
            path = self.spool.oldest()
            assert path is not None
            outcome = self._send(path.read_bytes(), source=path.name)
            if outcome == "failed":
                break
            if outcome == "refused":
                kept = self.spool.set_aside(path)
                log.error("spooled batch %s set aside in %s", path.name, kept)
            else:
                self.spool.remove(path)
        self._publish_spool_size()

    def close(self) -> None:
        self._client.close()

    def _send(self, data: bytes, *, source: str) -> Literal["sent", "failed", "refused"]:
        try:
            self._write_api.write(
                bucket=self.bucket,
                org=self.org,
                record=data,
                write_precision=WritePrecision.NS,  # type: ignore[arg-type]
            )
        except ApiException as exc:
            if exc.status in INVALID_STATUSES:
                self._refused(data, source, exc)
                return "refused"
            self._failed(source, f"HTTP {exc.status} {exc.reason}")
            return "failed"
        except Exception as exc:  # connection refused, timeout, DNS...: all mean "try later"
            self._failed(source, f"{type(exc).__name__}: {exc}")
            return "failed"
        if self._failing:
            log.info("TSDB at %s is accepting writes again", self.url)
            self._failing = False
        self.metrics.tsdb_lines.inc(data.count(b"\n") + 1)
        return "sent"

    def _failed(self, source: str, reason: str) -> None:
        self.metrics.tsdb_write_failures.inc()
        self._retry_at = self._clock() + self.retry_interval_s
        level = logging.DEBUG if self._failing else logging.WARNING
        log.log(
            level,
            "TSDB write of %s to %s failed (%s); spooling to %s and retrying in %.0fs",
            source,
            self.url,
            reason,
            self.spool.directory,
            self.retry_interval_s,
        )
        self._failing = True

    def _refused(self, data: bytes, source: str, exc: ApiException) -> None:
        lines = data.count(b"\n") + 1
        self.metrics.spool_dropped.inc(lines)
        body = exc.body if isinstance(exc.body, str) else str(exc.reason)
        log.error(
            "TSDB at %s refused %d lines of %s as invalid (HTTP %s: %s); they are not retried",
            self.url,
            lines,
            source,
            exc.status,
            body[:300],
        )

    def _to_spool(self, data: bytes) -> None:
        dropped = self.spool.append(data)
        if dropped:
            self.metrics.spool_dropped.inc(dropped)
        self._publish_spool_size()

    def _publish_spool_size(self) -> None:
        self.metrics.spool_bytes.set(self.spool.size_bytes)
        self.metrics.spool_files.set(self.spool.count)
