"""The ingest pipeline: batch messages, write SQL then TSDB, then acknowledge; sweep silent devices.

The MQTT network thread only enqueues. The thread calling `run()` builds batches (size or
time bound, whichever comes first) and, per batch: one SQL transaction (latest state, events,
samples when there is no TSDB, dead letters), one TSDB write (or spool), then the acks. A
database outage stalls the pipeline without acknowledging anything, so nothing is lost.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

from fleet.context import Context
from fleet.db import transaction, utcnow
from fleet.ingest.classify import Classified, Inbound, ParseLimits, Refused, classify
from fleet.ingest.consumer import DEFAULT_SESSION_EXPIRY_S, ReportConsumer
from fleet.ingest.directory import DeviceDirectory
from fleet.ingest.metrics import IngestMetrics
from fleet.ingest.service import BatchOutcome, mark_silent_devices, record_dead_letters, write_batch
from fleet.ingest.tsdb import TsdbWriter, health_lines

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0
# Attempts at a batch once shutdown was requested, before leaving it to broker redelivery.
ATTEMPTS_WHILE_STOPPING = 3


@dataclass(frozen=True, slots=True)
class PipelineOptions:
    client_id: str
    shared: bool = True
    topic_root: str = ""
    session_expiry_s: int = DEFAULT_SESSION_EXPIRY_S
    device_cache_ttl_s: float = 60.0
    tsdb_retry_s: float = 5.0


class IngestPipeline:
    """Consume, write and acknowledge until `stop()`; safe to run as several processes."""

    def __init__(
        self, ctx: Context, options: PipelineOptions, *, metrics: IngestMetrics | None = None
    ) -> None:
        settings = ctx.settings
        self.ctx = ctx
        self.settings = settings
        self.options = options
        self.metrics = metrics if metrics is not None else IngestMetrics()
        self.inbox: queue.SimpleQueue[Inbound] = queue.SimpleQueue()
        self.consumer = ReportConsumer(
            settings,
            client_id=options.client_id,
            shared=options.shared,
            inbox=self.inbox,
            topic_root=options.topic_root,
            session_expiry_s=options.session_expiry_s,
        )
        self.directory = DeviceDirectory(ttl_s=options.device_cache_ttl_s)
        self.limits = ParseLimits(settings.ingest_max_payload, settings.ingest_future_skew_s)
        self.tsdb: TsdbWriter | None = None
        if settings.tsdb_url:
            self.tsdb = TsdbWriter.from_settings(
                settings, self.metrics, retry_interval_s=options.tsdb_retry_s
            )
        self._stopping = threading.Event()
        self._abandon = threading.Event()

    def wait_ready(self, timeout_s: float) -> bool:
        """Wait until the broker has confirmed the subscriptions (with `run()` on a thread)."""
        return self.consumer.wait_ready(timeout_s)

    def stop(self) -> None:
        """Finish the batch in hand, acknowledge it and disconnect; a second call abandons it."""
        if self._stopping.is_set():
            self._abandon.set()
        self._stopping.set()

    def run(self) -> None:
        """Block until `stop()`; returns once disconnected."""
        if not self.consumer.start(stop=self._stopping):
            return
        next_sweep = time.monotonic() + self.settings.sweep_interval_s
        try:
            while not self._stopping.is_set():
                batch = self._collect()
                if batch:
                    self.process(batch)
                elif self.tsdb is not None:
                    self.tsdb.replay()
                if time.monotonic() >= next_sweep:
                    self.sweep()
                    next_sweep = time.monotonic() + self.settings.sweep_interval_s
            in_hand = self._drain()
            size = self.settings.ingest_batch_size
            for start in range(0, len(in_hand), size):
                if not self.process(in_hand[start : start + size]):
                    break  # abandoned: the rest is redelivered too
        finally:
            self.consumer.stop()
            if self.tsdb is not None:
                self.tsdb.close()
            log.info("ingest stopped")

    def _collect(self) -> list[Inbound]:
        try:
            first = self.inbox.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        limit = self.settings.ingest_batch_size
        deadline = time.monotonic() + self.settings.ingest_batch_ms / 1000
        while len(batch) < limit:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self.inbox.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def _drain(self) -> list[Inbound]:
        batch: list[Inbound] = []
        while True:
            try:
                batch.append(self.inbox.get_nowait())
            except queue.Empty:
                return batch

    def process(self, batch: list[Inbound]) -> bool:
        """Write one batch to SQL and the TSDB, then acknowledge it; False if left unacked."""
        started = time.perf_counter()
        stored = self._store(batch)
        if stored is None:
            return False
        classified, outcome = stored
        self._count_received(classified)
        if self.tsdb is not None:
            self.tsdb.write(health_lines(classified.health))
        self.consumer.ack(batch)
        self._count(batch, classified, outcome, time.perf_counter() - started)
        return True

    def _store(self, batch: list[Inbound]) -> tuple[Classified, BatchOutcome] | None:
        outages = 0
        refusals = 0
        while True:
            try:
                if refusals >= 2:
                    return self._store_one_by_one(batch)
                return self._store_once(batch)
            except (OperationalError, InterfaceError) as exc:
                # Connection lost, server restarting, deadlock: the same batch will succeed later.
                outages += 1
                if self._abandon.is_set() or (
                    self._stopping.is_set() and outages >= ATTEMPTS_WHILE_STOPPING
                ):
                    log.error("abandoning a batch of %d (left to redelivery): %s", len(batch), exc)
                    return None
                delay = min(MAX_BACKOFF_S, 0.25 * 2**outages)
                log.warning(
                    "database write of %d messages failed (%s); retry %d in %.1fs",
                    len(batch),
                    exc.orig or exc,
                    outages,
                    delay,
                )
                self.metrics.batch_retries.inc()
                self._abandon.wait(delay)
            except DBAPIError:
                # Data the database refuses: maybe a device changed under a stale cache entry;
                # the second refusal isolates the culprit message by message.
                log.exception("database refused a batch of %d messages", len(batch))
                refusals += 1
                self.metrics.batch_retries.inc()
                self.directory.forget()

    def _store_once(self, batch: list[Inbound]) -> tuple[Classified, BatchOutcome]:
        with transaction(self.ctx.sessions) as session:
            classified = classify(
                batch,
                directory=self.directory,
                session=session,
                limits=self.limits,
                now=time.time(),
            )
            outcome = write_batch(
                session=session,
                classified=classified,
                keep_samples=self.tsdb is None,
                dead_letter_max=self.settings.dead_letter_max,
                now=utcnow(),
            )
        return classified, outcome

    def _store_one_by_one(self, batch: list[Inbound]) -> tuple[Classified, BatchOutcome]:
        """Isolate the message(s) the database refuses, dead-letter them, keep the rest."""
        merged = Classified()
        total = BatchOutcome()
        for message in batch:
            try:
                classified, outcome = self._store_once([message])
            except (OperationalError, InterfaceError):
                raise
            except DBAPIError as exc:
                log.error("message on %s cannot be stored: %s", message.topic, exc.orig or exc)
                refused = Refused(message, "write_failed", str(exc.orig or exc)[:500])
                with transaction(self.ctx.sessions) as session:
                    record_dead_letters(
                        session=session,
                        refused=[refused],
                        max_rows=self.settings.dead_letter_max,
                        now=utcnow(),
                    )
                classified = Classified(refused=[refused])
                outcome = BatchOutcome(dead_letters=1)
            merged.health += classified.health
            merged.states += classified.states
            merged.refused += classified.refused
            total.health_written += outcome.health_written
            total.states_written += outcome.states_written
            total.stale_health += outcome.stale_health
            total.stale_state += outcome.stale_state
            total.dead_letters += outcome.dead_letters
            for kind, count in outcome.events.items():
                total.events[kind] = total.events.get(kind, 0) + count
        return merged, total

    def _count_received(self, classified: Classified) -> None:
        # Counted once stored: a batch left to redelivery counts when it comes back, so the
        # processes' totals add up to what the broker delivered. Only refused messages need
        # their topic looked at; the rest are sorted by channel already.
        received = Counter(r.message.channel for r in classified.refused)
        received["health"] += len(classified.health)
        received["state"] += len(classified.states)
        for channel, count in received.items():
            if count:
                self.metrics.received.labels(channel).inc(count)

    def _count(
        self, batch: list[Inbound], classified: Classified, outcome: BatchOutcome, seconds: float
    ) -> None:
        m = self.metrics
        m.written.labels("health").inc(outcome.health_written)
        m.written.labels("state").inc(outcome.states_written)
        for reason, count in Counter(r.reason for r in classified.refused).items():
            m.rejected.labels(reason).inc(count)
        if outcome.stale_health:
            m.rejected.labels("stale_seq").inc(outcome.stale_health)
        if outcome.stale_state:
            m.rejected.labels("stale_state").inc(outcome.stale_state)
        m.dead_letters.inc(outcome.dead_letters)
        for kind, count in outcome.events.items():
            m.device_events.labels(kind).inc(count)
        m.batch_size.observe(len(batch))
        m.batch_seconds.observe(seconds)
        m.queue_depth.set(self.inbox.qsize())

    def sweep(self) -> int:
        """Mark devices silent for longer than settings.offline_after_s as lost."""
        try:
            with transaction(self.ctx.sessions) as session:
                marked = mark_silent_devices(
                    session=session, now=utcnow(), offline_after_s=self.settings.offline_after_s
                )
        except SQLAlchemyError:
            log.exception("sweep for silent devices failed; trying again next interval")
            return 0
        if marked:
            log.info("%d devices went silent and are now marked lost", marked)
            self.metrics.silent_marked.inc(marked)
            self.metrics.device_events.labels("silent").inc(marked)
        return marked
