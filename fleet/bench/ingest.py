"""`estate bench ingest`: sustained reports/s through real `estate ingest` processes.

Creates throwaway devices, runs one or more `estate ingest` child processes (one shared
subscription group) against the configured database, broker and TSDB, publishes health at
QoS 1 from another process, and times each report from publish to visible in device_state.
Then it counts what reached history and what each process was handed (lost, doubled, the
split), measures a bare consumer (ingest's own MQTT reader and orjson, acknowledging at
once) fed by the same publisher for comparison,
and removes what it made.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import func, select

from agents.protocol import PREFIX
from fleet.bench.child import IngestChild, Progress, client_id_for
from fleet.bench.load import PublishLog, PublishPlan, bare_consumer, payload, publish_health
from fleet.bench.stores import (
    BenchError,
    chunks,
    count_history,
    create_devices,
    delete_series,
    remove_devices,
)
from fleet.bench.visibility import VisibilityPoller, percentile
from fleet.broker.urls import close_client, connect_client, parse_broker_url
from fleet.context import Context
from fleet.db import transaction
from fleet.devices.models import DeviceState
from fleet.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["BenchError", "IngestBenchResult", "run_ingest_bench"]

SETTLE_S = 15.0


@dataclass(frozen=True, slots=True)
class IngestBenchResult:
    published: int
    visible: int
    in_history: int
    seconds: float
    p50_ms: float
    p99_ms: float
    baseline_rate: float
    # Health reports each ingest process was handed during the timed run.
    shares: tuple[int, ...] = (0,)
    # CPU the ingest processes used from the first report published to the last one visible.
    ingest_cpu_s: float = 0.0

    @property
    def lost(self) -> int:
        return self.published - min(self.visible, self.in_history)

    @property
    def doubled(self) -> int:
        """Reports delivered to ingest more than once (redeliveries, or a split gone wrong)."""
        return max(0, sum(self.shares) - self.published)

    @property
    def rate(self) -> float:
        return self.published / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        ratio = self.rate / self.baseline_rate if self.baseline_rate else float("nan")
        total = sum(self.shares) or 1
        split = " / ".join(f"{100 * share / total:.1f}%" for share in self.shares)
        return (
            f"ingest: {self.rate:,.0f} reports/s sustained, p50 {self.p50_ms:,.0f} ms, "
            f"p99 {self.p99_ms:,.0f} ms (publish to visible in the database), lost {self.lost}, "
            f"doubled {self.doubled}, processes {len(self.shares)} (split {split}), "
            f"ingest CPU {1e6 * self.ingest_cpu_s / max(1, self.published):,.0f} us/report, "
            f"baseline {self.baseline_rate:,.0f} reports/s (bare consumer on the same broker), "
            f"ratio {ratio:.2f}"
        )


def wait_until_ingesting(
    settings: Settings,
    ctx: Context,
    ids: list[str],
    progress: Progress,
    *,
    warm_ts: float,
    topic_root: str,
    ingest: list[IngestChild],
) -> None:
    """Publish seq 0 for every device until all are visible and every ingest has had some.

    Afterwards each ingest process is subscribed and its device cache is warm.
    """
    address = parse_broker_url(settings.effective_mqtt_url)
    client = connect_client(address, f"bench-warm-{os.getpid()}")
    seen = 0
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for child in ingest:
                if child.process.poll() is not None:
                    raise BenchError(f"estate ingest exited with code {child.process.returncode}")
            report = payload(0, warm_ts)  # the same report each time: history keeps it once
            infos = [client.publish(f"{topic_root}{PREFIX}/{d}/health", report, qos=1) for d in ids]
            for info in infos:
                info.wait_for_publish(10)
            for _ in range(20):
                time.sleep(0.1)
                with transaction(ctx.sessions) as session:
                    seen = sum(
                        session.scalar(
                            select(func.count()).where(
                                DeviceState.device_id.in_(chunk), DeviceState.seq >= 0
                            )
                        )
                        or 0
                        for chunk in chunks(ids)
                    )
                if seen == len(ids) and all(child.received() for child in ingest):
                    return
            progress(f"waiting for ingest: {seen}/{len(ids)} devices seen")
        raise BenchError("ingest did not start processing within 60s (see its log above)")
    finally:
        close_client(client)


def settled_counts(ingest: list[IngestChild], quiet_s: float = 0.5) -> list[int]:
    """Reports received per process once the counts stop moving (warm-up repeats drained)."""
    counts = [child.received() for child in ingest]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = [child.received() for child in ingest]
        if now == counts:
            return now
        counts = now
    raise BenchError("ingest kept receiving warm-up reports for 30s after they were all seen")


def _spawn() -> multiprocessing.context.SpawnContext:
    return multiprocessing.get_context("spawn")


def publish_and_watch(
    plan: PublishPlan, client_id: str, poller: VisibilityPoller, progress: Progress
) -> PublishLog:
    """Run the publisher process to completion, reporting progress every second."""
    mp = _spawn()
    sent = mp.Value("q", 0)
    receiver, sender = mp.Pipe(duplex=False)
    process = mp.Process(
        target=publish_health, args=(plan, client_id, poller.visible, sent, sender), daemon=True
    )
    process.start()
    started = time.monotonic()
    before = 0
    while process.is_alive() and not receiver.poll(1.0):
        visible = poller.estimate
        progress(
            f"[{time.monotonic() - started:5.1f}s] published {sent.value:,}  visible {visible:,}  "
            f"({visible - before:,}/s)  backlog {sent.value - visible:,}"
        )
        before = visible
    if not receiver.poll(30):
        raise BenchError("the publisher process died without reporting (see its error above)")
    published: PublishLog = receiver.recv()
    process.join(10)
    if process.exitcode != 0 or not published.published:
        raise BenchError("the publisher process failed (see its error above)")
    return published


def wait_visible(poller: VisibilityPoller, published: int, progress: Progress) -> tuple[int, float]:
    """(visible, when) once every report is visible, or nothing moved for SETTLE_S seconds.

    `when` is the start of the first check that saw them all (or of the last check).
    """
    last_count, last_move, checks = -1, time.monotonic(), 0
    while True:
        checks += 1
        checked_at = time.time()
        visible = poller.exact_total()
        if visible >= published:
            return visible, checked_at
        if visible != last_count:
            last_count, last_move = visible, time.monotonic()
        elif time.monotonic() - last_move > SETTLE_S:
            return visible, checked_at
        if checks % 4 == 1:
            progress(f"draining: visible {visible:,} of {published:,}")
        time.sleep(0.25)


def measure_baseline(
    settings: Settings, run: str, ids: list[str], seconds: float, window: int
) -> float:
    """Messages/s a bare consumer (ingest's MQTT reader + orjson) takes from the same broker.

    The same publisher holds the same window ahead of it as ahead of ingest.
    """
    mp = _spawn()
    root = f"estate-bench-{run}-baseline/"  # away from the ingest's topics
    receiver, sender = mp.Pipe(duplex=False)
    url = settings.effective_mqtt_url
    received = mp.Value("q", 0)
    consumer = mp.Process(
        target=bare_consumer,
        args=(url, root, f"bench-base-{run}", seconds + 3, received, sender),
        daemon=True,
    )
    consumer.start()
    if not receiver.poll(30) or receiver.recv() != "ready":
        raise BenchError("the baseline consumer did not subscribe within 30s")
    acknowledged = mp.Value("q", 0)
    plan = PublishPlan(url, ids, seconds, window=window, topic_root=root)
    log_receiver, log_sender = mp.Pipe(duplex=False)
    publisher = mp.Process(
        target=publish_health,
        args=(plan, f"bench-pub-base-{run}", received, acknowledged, log_sender),
    )
    publisher.start()
    if not log_receiver.poll(seconds + 60):
        raise BenchError("the baseline publisher did not finish")
    log_receiver.recv()  # drained so the publisher can exit
    publisher.join(10)
    if not receiver.poll(seconds + 30):
        raise BenchError("the baseline consumer did not report")
    _received, rate = receiver.recv()
    consumer.join(10)
    return float(rate)


def clean_up(
    settings: Settings, ctx: Context, ids: list[str], client_ids: list[str], data_dir: Path
) -> None:
    """Remove the bench devices, their series and the ingest sessions; log what fails."""
    try:
        remove_devices(ctx, ids)
    except Exception:
        log.exception("could not remove the bench devices (ids start %s)", ids[0])
    if settings.tsdb_url:
        prefix = ids[0].rsplit("-", 1)[0]
        try:
            delete_series(settings, prefix)
        except httpx.HTTPError as exc:
            log.warning("bench series %s-* left in the TSDB: %s", prefix, exc)
    address = parse_broker_url(settings.effective_mqtt_url)
    for client_id in client_ids:
        try:
            close_client(connect_client(address, client_id, clean_start=True, session_expiry_s=0))
        except Exception:
            log.exception("could not end the bench's broker session %s", client_id)
    shutil.rmtree(data_dir, ignore_errors=True)


def run_ingest_bench(
    settings: Settings,
    *,
    devices: int,
    seconds: float,
    rate: float = 0.0,
    window: int = 6_000,
    prison: str = "MDI",
    baseline_seconds: float = 10.0,
    processes: int = 1,
    progress: Progress = lambda _line: None,
) -> IngestBenchResult:
    """The whole benchmark; see the module docstring."""
    if settings.embedded_mqtt:
        raise BenchError("set ESTATE_MQTT_URL to a real broker (mqtt://host:1883) to benchmark")
    run = secrets.token_hex(3)
    ids = [f"{prison}-bench-{run}-{i:06d}" for i in range(devices)]
    data_dir = Path(settings.data_dir) / f"bench-{run}"
    ctx = Context(settings)
    ingest: list[IngestChild] = []
    client_ids = [client_id_for(run, index) for index in range(processes)]
    progress(f"creating {devices} devices {ids[0]}..{ids[-1]} in {prison}")
    try:
        # One transaction: if it fails nothing was created, so there is nothing to clean up.
        create_devices(ctx, ids, prison)
    except BaseException:
        ctx.close()
        raise
    try:
        # Its own topic root keeps other traffic on the broker out of the measurement.
        topic_root = f"estate-bench-{run}/"
        progress(f"starting {processes} estate ingest process(es)")
        for index in range(processes):
            taken = frozenset(child.metrics_port for child in ingest)
            own_dir = data_dir / f"ingest-{index}"
            ingest.append(IngestChild(settings, run, own_dir, topic_root, index, taken))
        warm_ts = time.time()
        wait_until_ingesting(
            settings, ctx, ids, progress, warm_ts=warm_ts, topic_root=topic_root, ingest=ingest
        )
        before = settled_counts(ingest)
        cpu_before = sum(child.cpu_seconds() for child in ingest)
        mp = _spawn()
        poller = VisibilityPoller(ctx, ids, visible=mp.Value("q", 0))
        poller.start()
        plan = PublishPlan(
            settings.effective_mqtt_url,
            ids,
            seconds,
            rate=rate,
            window=window,
            topic_root=topic_root,
        )
        publish_log = publish_and_watch(plan, f"bench-pub-{run}", poller, progress)
        visible, all_visible_at = wait_visible(poller, publish_log.published, progress)
        poller.stop()
        cpu_used = sum(child.cpu_seconds() for child in ingest) - cpu_before
        after = settled_counts(ingest)
        shares = [end - start for end, start in zip(after, before, strict=True)]
        for child in ingest:
            if settings.tsdb_url:
                child.wait_spool_empty(progress)
            rejected = child.rejected()
            if any(rejected.values()):
                # The warm-up repeats seq 0 until every device shows it: those repeats are stale.
                progress(f"{child.client_id} refused (stale_seq has warm-up repeats): {rejected}")
        while ingest:
            ingest.pop().stop()
        progress("counting the reports in the health history")
        in_history = count_history(
            settings, ctx, ids, warm_ts=warm_ts, expected=publish_log.published
        )
        progress(f"{in_history:,} of {publish_log.published:,} reports in the health history")
        latencies = poller.latencies(publish_log.times, devices, first_seq=1)
        progress(f"measuring a bare consumer for {baseline_seconds:.0f}s")
        baseline = measure_baseline(settings, run, ids, baseline_seconds, window)
        return IngestBenchResult(
            published=publish_log.published,
            visible=visible,
            in_history=in_history,
            seconds=max(1e-9, all_visible_at - publish_log.times[0]),
            p50_ms=percentile(latencies, 0.50) * 1000,
            p99_ms=percentile(latencies, 0.99) * 1000,
            baseline_rate=baseline,
            shares=tuple(shares),
            ingest_cpu_s=cpu_used,
        )
    finally:
        while ingest:
            ingest.pop().stop()
        clean_up(settings, ctx, ids, client_ids, data_dir)
        ctx.close()
