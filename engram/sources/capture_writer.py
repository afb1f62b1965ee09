"""The proxy's capture writer: finished exchanges go to the journal off the request path.

One thread drains a bounded queue and journals exchanges in batches (one transaction per
batch, not per exchange), so a busy proxy keeps up; a full queue makes the request wait
for room instead of dropping an exchange. A response's last byte waits until its
exchange is safe from a kill -9 (`put_durable`): spooled (capture_spool.py: one write,
microseconds) or, where there is no spool, journaled (docs/architecture.md states what
remains).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engram.sources.capture_spool import Spool, new_key, recover
from engram.wire.model import RawRequest, RawResponse

if TYPE_CHECKING:
    from engram.journaling import CapturePolicy
    from engram.sources.proxy import ProxyStats

log = logging.getLogger("engram.proxy")

# Finished exchanges for the journal, written together; runs on the writer thread.
Captured = tuple[RawRequest, "RawResponse | None", "str | None"]
# ... each with the source key it is journaled under (given at capture: a spooled
# exchange journaled again after a crash is found by it, not duplicated).
CaptureFn = Callable[[list[tuple[str, Captured]]], None]
GATHER_S = 0.01  # how long a non-urgent item waits for others to share its transaction


class _Entry:
    """A capture on the queue: its key, whether the spool holds it, and who waits for
    its commit (`done`, when it could not be spooled)."""

    __slots__ = ("done", "item", "key", "spooled")

    def __init__(
        self, item: Captured, key: str, spooled: bool, done: Callable[[], None] | None = None
    ) -> None:
        self.item = item
        self.key = key
        self.spooled = spooled
        self.done = done


class CaptureWriter:
    """A bounded queue drained by one thread that journals exchanges in batches.

    Batching keeps up with a busy proxy (one transaction per batch, not per exchange);
    when the queue is full the request waits for room instead of dropping an exchange.
    Deferred tasks (logging an injection) ride the same thread, in order.
    """

    def __init__(
        self,
        capture: CaptureFn | None,
        size: int,
        stats: ProxyStats,
        spool_dir: Path | None = None,
    ) -> None:
        self.capture = capture
        self.stats = stats
        self.queue: queue.Queue[_Entry | Callable[[], None] | None] = queue.Queue(size)
        self.spool_dir = spool_dir if capture is not None else None
        self.spool: Spool | None = None
        if self.spool_dir is not None:
            try:
                self.spool = Spool(self.spool_dir)
            except OSError as exc:
                log.warning("no capture spool in %s (%s): journaling synchronously", spool_dir, exc)
        self.thread = threading.Thread(target=self._run, name="engram-capture", daemon=True)
        self.thread.start()

    def _spooled(self, item: Captured) -> _Entry:
        key = new_key()
        return _Entry(item, key, self.spool is not None and self.spool.append(key, item))

    async def _enqueue(self, entry: _Entry | Callable[[], None]) -> None:
        try:
            self.queue.put_nowait(entry)
        except queue.Full:
            self.stats.capture_waits += 1
            await asyncio.get_running_loop().run_in_executor(None, self.queue.put, entry)

    async def put(self, item: Captured) -> None:
        await self._enqueue(self._spooled(item))

    async def put_durable(self, item: Captured, timeout: float) -> bool:
        """Queue `item` and return once a kill -9 can no longer lose it: at once when it
        is spooled, else when it is journaled (or failed to be), at most `timeout`
        seconds; False when that wait ran out (the item stays queued)."""
        entry = self._spooled(item)
        if entry.spooled:
            await self._enqueue(entry)
            return True
        loop = asyncio.get_running_loop()
        journaled: asyncio.Future[None] = loop.create_future()

        def done() -> None:
            loop.call_soon_threadsafe(_resolve, journaled)

        entry.done = done
        await self._enqueue(entry)
        try:
            await asyncio.wait_for(asyncio.shield(journaled), timeout)
        except TimeoutError:
            return False
        return True

    def put_nowait(self, item: Captured | Callable[[], None]) -> None:
        # From a cancelled handler or a worker thread: blocking is fine.
        self.queue.put(item if callable(item) else self._spooled(item))

    def defer(self, fn: Callable[[], None]) -> None:
        self.put_nowait(fn)

    def close(self, timeout: float = 30.0) -> None:
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join(timeout)
        if self.spool is not None and not self.thread.is_alive():
            self.spool.close()

    def _run(self) -> None:
        if self.spool_dir is not None and self.capture is not None:
            try:  # what a proxy killed before its writer committed left behind
                recover(self.spool_dir, self.capture)
            except Exception:
                log.exception("journaling a stopped proxy's spool failed; it is kept")
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
        A response waiting for its row (`put_durable` without a spool) ends the wait at
        once: an idle proxy must not add the gather time to an answer (measured: +19 ms with a fixed
        wait, ~2 ms without), and a busy one batches anyway (what queues during one
        commit is the next batch). That includes a durable capture arriving while an
        injection log (a deferred task, queued a few ms before its exchange ends)
        gathers: it used to sit out the rest of the wait, +5-8 ms on every request
        that got memory.
        """
        batch = [first]
        deadline = time.monotonic() + (0.0 if _waited_for(first) else GATHER_S)
        while len(batch) < 200:
            left = deadline - time.monotonic()
            try:
                nxt = self.queue.get(timeout=left) if left > 0 else self.queue.get_nowait()
            except queue.Empty:
                break
            batch.append(nxt)
            if nxt is None:
                break
            if _waited_for(nxt):
                deadline = 0.0  # take what is queued now, wait no longer
        return batch

    def _flush(self, batch: list[Any]) -> None:
        entries = [b for b in batch if isinstance(b, _Entry)]
        if entries and self.capture is not None:
            try:
                self.capture([(e.key, e.item) for e in entries])
                self.stats.captured += len(entries)
                if self.spool is not None:
                    self.spool.journaled(sum(e.spooled for e in entries))
            except Exception:  # spooled ones stay spooled: the next proxy retries them
                self.stats.capture_failed += len(entries)
                log.exception("journaling %d exchanges failed", len(entries))
        for entry in entries:
            if entry.done is not None:
                entry.done()
        for task in batch:
            if callable(task):
                try:
                    task()
                except Exception:
                    log.exception("a deferred proxy task failed")


def _waited_for(entry: Any) -> bool:
    return isinstance(entry, _Entry) and entry.done is not None


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def journal_capture(store: Any, project_hint: str | None, policy: CapturePolicy) -> CaptureFn:
    """The standard capture: one journal row per exchange, exactly once, a batch per
    transaction (`policy`: the config's journaling.CapturePolicy). A locked database is
    retried rather than losing the batch."""
    from engram import journaling
    from engram.store.db import DatabaseLocked

    def capture(items: list[tuple[str, Captured]]) -> None:
        for attempt in range(10):
            try:
                with store.write() as session:
                    for key, (raw, response, error) in items:
                        journaling.record(
                            session,
                            journaling.Capture(
                                source="proxy",
                                source_key=key,
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
