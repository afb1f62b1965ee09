"""The proxy's capture writer: finished exchanges go to the journal off the request path.

One thread drains a bounded queue and journals exchanges in batches (one transaction per
batch, not per exchange), so a busy proxy keeps up; a full queue makes the request wait
for room instead of dropping an exchange. A response's last byte can wait for its own
row (`put_durable`), which closes the window a kill -9 right after a stream would
otherwise leave (docs/architecture.md states what remains).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engram.wire.model import RawRequest, RawResponse

if TYPE_CHECKING:
    from engram.journaling import CapturePolicy
    from engram.sources.proxy import ProxyStats

log = logging.getLogger("engram.proxy")

# Finished exchanges for the journal, written together; runs on the writer thread.
Captured = tuple[RawRequest, "RawResponse | None", "str | None"]
CaptureFn = Callable[[list[Captured]], None]
GATHER_S = 0.01  # how long a non-urgent item waits for others to share its transaction


class _Durable:
    """A capture whose journaling someone waits for (`CaptureWriter.put_durable`)."""

    __slots__ = ("done", "item")

    def __init__(self, item: Captured, done: Callable[[], None]) -> None:
        self.item = item
        self.done = done


class CaptureWriter:
    """A bounded queue drained by one thread that journals exchanges in batches.

    Batching keeps up with a busy proxy (one transaction per batch, not per exchange);
    when the queue is full the request waits for room instead of dropping an exchange.
    Deferred tasks (logging an injection) ride the same thread, in order.
    """

    def __init__(self, capture: CaptureFn | None, size: int, stats: ProxyStats) -> None:
        self.capture = capture
        self.stats = stats
        self.queue: queue.Queue[Captured | _Durable | Callable[[], None] | None] = queue.Queue(size)
        self.thread = threading.Thread(target=self._run, name="engram-capture", daemon=True)
        self.thread.start()

    async def put(self, item: Captured) -> None:
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            self.stats.capture_waits += 1
            await asyncio.get_running_loop().run_in_executor(None, self.queue.put, item)

    async def put_durable(self, item: Captured, timeout: float) -> bool:
        """Queue `item` and wait until it is journaled (or failed to be), at most
        `timeout` seconds; False when the wait ran out (the item stays queued)."""
        loop = asyncio.get_running_loop()
        journaled: asyncio.Future[None] = loop.create_future()

        def done() -> None:
            loop.call_soon_threadsafe(_resolve, journaled)

        entry = _Durable(item, done)
        try:
            self.queue.put_nowait(entry)
        except queue.Full:
            self.stats.capture_waits += 1
            await loop.run_in_executor(None, self.queue.put, entry)
        try:
            await asyncio.wait_for(asyncio.shield(journaled), timeout)
        except TimeoutError:
            return False
        return True

    def put_nowait(self, item: Captured | Callable[[], None]) -> None:
        self.queue.put(item)  # from a cancelled handler or a worker thread: blocking is fine

    def defer(self, fn: Callable[[], None]) -> None:
        self.put_nowait(fn)

    def close(self, timeout: float = 30.0) -> None:
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            batch = self._gather(item)
            if batch[-1] is None:
                self._flush(batch[:-1])
                return
            self._flush(batch)

    def _gather(self, first: Any) -> list[Any]:
        """`first` and what queues behind it, ending with None when told to stop.

        A burst is let gather (GATHER_S) so many exchanges share one transaction: one
        per exchange costs the request path, which shares the interpreter, far more.
        A response waiting for its row (`put_durable`) ends the wait at once: an idle
        proxy must not add the gather time to an answer (measured: +19 ms with a fixed
        wait, ~2 ms without), and a busy one batches anyway (what queues during one
        commit is the next batch). That includes a durable capture arriving while an
        injection log (a deferred task, queued a few ms before its exchange ends)
        gathers: it used to sit out the rest of the wait, +5-8 ms on every request
        that got memory.
        """
        batch = [first]
        deadline = time.monotonic() + (0.0 if isinstance(first, _Durable) else GATHER_S)
        while len(batch) < 200:
            left = deadline - time.monotonic()
            try:
                nxt = self.queue.get(timeout=left) if left > 0 else self.queue.get_nowait()
            except queue.Empty:
                break
            batch.append(nxt)
            if nxt is None:
                break
            if isinstance(nxt, _Durable):
                deadline = 0.0  # take what is queued now, wait no longer
        return batch

    def _flush(self, batch: list[Any]) -> None:
        items = [b.item if isinstance(b, _Durable) else b for b in batch]
        captures = [c for c in items if isinstance(c, tuple)]
        if captures and self.capture is not None:
            try:
                self.capture(captures)
                self.stats.captured += len(captures)
            except Exception:
                self.stats.capture_failed += len(captures)
                log.exception("journaling %d exchanges failed", len(captures))
        for entry in batch:
            if isinstance(entry, _Durable):
                entry.done()
        for task in items:
            if callable(task):
                try:
                    task()
                except Exception:
                    log.exception("a deferred proxy task failed")


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def journal_capture(store: Any, project_hint: str | None, policy: CapturePolicy) -> CaptureFn:
    """The standard capture: one journal row per exchange, exactly once, a batch per
    transaction (`policy`: the config's journaling.CapturePolicy). A locked database is
    retried rather than losing the batch."""
    from engram import journaling
    from engram.store.db import DatabaseLocked

    def capture(items: list[Captured]) -> None:
        for attempt in range(10):
            try:
                with store.write() as session:
                    for raw, response, error in items:
                        journaling.record(
                            session,
                            journaling.Capture(
                                source="proxy",
                                source_key=f"proxy:{uuid.uuid4().hex}",
                                request=raw,
                                response=response,
                                project_hint=project_hint,
                                error=error,
                            ),
                            policy,
                        )
                return
            except DatabaseLocked:
                if attempt == 9:
                    raise
                time.sleep(0.5 * (attempt + 1))

    return capture
