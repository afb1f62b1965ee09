"""Assertions about behaviour, not about an SDK's exception classes.

Which exception an SDK raises when a connection drops mid-stream changed between
anthropic 0.x and 2.x (httpx's RemoteProtocolError let through, then wrapped in
APIConnectionError). A test that pins the class breaks on an upgrade although nothing
engram does changed; what matters is that the call failed instead of returning.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass
class Failure:
    error: BaseException | None = None


@contextmanager
def call_fails() -> Iterator[Failure]:
    """The block must raise (any error but a failed assertion); the error is kept."""
    failure = Failure()
    try:
        yield failure
    except AssertionError:
        raise
    except Exception as exc:
        failure.error = exc
        return
    raise AssertionError("the call succeeded; expected it to fail")


def engram_warnings(caplog: Any) -> list[logging.LogRecord]:
    """engram's own warnings and errors among pytest's captured records: caplog also
    holds other libraries' records, e.g. asyncio's "Task was destroyed but it is
    pending" for an aiohttp task an earlier test left to the garbage collector."""
    return [
        r
        for r in caplog.records
        if r.name.startswith("engram") and r.levelname in ("WARNING", "ERROR")
    ]
