"""When to try a transiently failed action again: exponential backoff with jitter, Retry-After honoured."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float = 5.0
    max_seconds: float = 900.0
    max_attempts: int = 10
    # How long a retry pass owns the actions it picked, so another process does not run them too.
    lease_seconds: float = 300.0

    def delay(
        self, attempts: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait after the `attempts`-th failed try: half fixed, half random ("equal jitter")."""
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** max(0, attempts - 1))
        wait = ceiling / 2 + (rng or random).uniform(0, ceiling / 2)
        if retry_after is not None and retry_after > wait:
            wait = min(float(retry_after), max(self.max_seconds, 3600.0))
        return wait

    def next_attempt(
        self, now: datetime, attempts: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> datetime:
        return now + timedelta(seconds=self.delay(attempts, retry_after, rng))

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.max_attempts


DEFAULT_RETRY = RetryPolicy()
