"""Estate-wide figures shared by a process's requests for a few seconds instead of recounted."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet.db import utcnow
from fleet.estate.models import Prison
from fleet.estate.service import PrisonCounts, prison_counts

T = TypeVar("T")


@dataclass(frozen=True)
class Computed(Generic[T]):
    as_of: datetime
    value: T


class SharedByDatabase(Generic[T]):
    """A value worked out from the database, recomputed at most every `ttl_s` per database.

    One request computes while the others wait for its answer, so a burst of requests costs
    one computation rather than one each.
    """

    def __init__(
        self,
        compute: Callable[[Session], T],
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.compute = compute
        self.ttl_s = ttl_s
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, Computed[T]]] = {}

    def get(self, session: Session) -> Computed[T]:
        key = str(session.get_bind().engine.url)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or self.clock() - entry[0] >= self.ttl_s:
                entry = (self.clock(), Computed(utcnow(), self.compute(session)))
                self._entries[key] = entry
            return entry[1]


def all_prison_counts(session: Session) -> dict[str, PrisonCounts]:
    """Counts for every prison in the estate; callers pick out their caseload."""
    codes = list(session.scalars(select(Prison.code)))
    return prison_counts(session=session, codes=codes)


# Matches the web overview's figures: fresh enough to act on, cheap under many viewers.
COUNTS_TTL_S = 3.0
estate_counts = SharedByDatabase(all_prison_counts, COUNTS_TTL_S)
