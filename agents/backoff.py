"""Jittered exponential backoff between connection attempts."""

from __future__ import annotations

import random


class Backoff:
    """Delays double from `initial_s` up to `cap_s`; each is drawn from [d/2, d].

    The jitter keeps 200,000 devices from reconnecting in lock-step after a broker restart.
    """

    def __init__(
        self,
        *,
        initial_s: float = 1.0,
        cap_s: float = 60.0,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < initial_s <= cap_s:
            raise ValueError("need 0 < initial_s <= cap_s")
        self.initial_s = initial_s
        self.cap_s = cap_s
        self.attempts = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.initial_s * 2 ** min(self.attempts, 32))
        self.attempts += 1
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.attempts = 0
