"""The proxy's recall step: request -> query -> recall -> the block to inject.

Parsing the request here is cheap (~0.3 ms for a 75 KB Claude Code body); recall itself
is bounded by the proxy's budget. The injection is logged (and use counts bumped) on
the capture writer, never on the request path.

Privacy: `<private>` passages never reach the recall query (which is logged with the
injection and may be sent to MuninnDB), and while engram is paused memories are still
injected (using what is stored records nothing new) but no injection is logged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engram.wire.model import Format, RawRequest

if TYPE_CHECKING:
    from engram.recall.service import Recaller

log = logging.getLogger("engram.proxy")


def make_recall(
    recaller: Recaller,
    project_hint: str | None,
    defer: Callable[[Callable[[], None]], Any],
    *,
    warm: bool = True,
) -> Callable[[bytes, Format, RawRequest], str | None]:
    """A RecallFn for the proxy. `defer` runs a function off the request path. With
    `warm`, the embedder and the vector matrix load in the background right away: the
    first requests are forwarded without memory rather than waiting for them (~2 s)."""
    from engram.store import pause
    from engram.wire import parse_exchange
    from engram.wire.private import strip_texts

    if warm:
        recaller.warm(background=True)

    def recall(body: bytes, fmt: Format, raw: RawRequest) -> str | None:
        exchange = parse_exchange(raw, None, project_hint=project_hint)
        if exchange.kind.value != "conversation" or not exchange.turns:
            return None
        exchange.turns = strip_texts(exchange.turns)
        result = recaller.recall_for(exchange)
        if result is None or not result.injected or not result.block_text:
            return None
        with lock:
            pending.append((result, exchange.conversation))
            first = len(pending) == 1
        if first:
            defer(flush)  # one writer task drains everything queued by then
        return result.block_text

    pending: list[tuple[Any, str]] = []
    lock = threading.Lock()

    def flush() -> None:
        with lock:
            items = pending[:]
            pending.clear()
        with recaller.store.read() as conn:
            if pause.read_current(conn) is not None:
                return  # paused: nothing is recorded, not even what was injected
        recaller.log_injections(items)

    return recall
