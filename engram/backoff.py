"""One backoff for everything engram retries."""

from __future__ import annotations

import time


class Backoff:
    """After a failure, the next try waits: `base`, doubling up to `cap`; a success resets.

    The analyzer's daemon hook (15 s to 10 minutes: without it a rate-limited or
    logged-out backend would be called, and a `claude -p` started, on every poll) and the
    capture writer's journal retries (0.1 s to 5 s) use it.
    """

    def __init__(self, base: float = 15.0, cap: float = 600.0) -> None:
        self.base, self.cap = base, cap
        self.failures = 0
        self.until = 0.0

    def ready(self) -> bool:
        return time.monotonic() >= self.until

    def failed(self) -> float:
        delay = min(self.cap, self.base * 2**self.failures)
        self.failures += 1
        self.until = time.monotonic() + delay
        return delay

    def succeeded(self) -> None:
        self.failures, self.until = 0, 0.0
