"""Waiting for something to happen, without guessing how long it takes.

Tests wait for a condition, never for a fixed time: a fixed sleep is either too short on
a loaded 2-core CI machine (flaky) or too long everywhere else (slow).
"""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until[T](
    condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> T:
    """Poll `condition` until it returns something truthy; return that. Fails the test
    with `what` (or the condition's name) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = interval
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            name = what or getattr(condition, "__name__", "condition")
            raise AssertionError(f"timed out after {timeout:g} s waiting for {name}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)
