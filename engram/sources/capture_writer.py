"""The proxy's capture writer: finished exchanges go to the journal off the request path.

One thread drains a bounded queue and journals exchanges in batches (one transaction per
batch, not per exchange), so a busy proxy keeps up; a full queue makes the request wait
for room instead of dropping an exchange. A response's last byte waits until its
exchange is safe from a kill -9 (`put_durable`): spooled (capture_spool.py: one write,
microseconds) or, where there is no spool, journaled (docs/architecture.md states what
remains).

A failed commit is retried by this thread, not left for the next proxy start:
- a database that cannot be written now (locked past its busy timeout, a full disk, an
  I/O error) holds everything, old and new, until a retry commits: after 0.1 s, then
  doubling up to 5 s, one attempt per wait (each costs up to the busy timeout), so the
  spool empties within seconds of the database taking writes again;
- any other error splits the batch in halves, at once, down to the exchange that fails
  alone (~2 log2(n) transactions), so the others commit now; one that fails alone is
  tried twice more (0.1 s, 0.2 s later, alone) and then moved to the quarantine file
  next to the spool (`engram status` shows it), with one error line, and counts as
  settled so the spool can empty.
Exactly once throughout: an exchange keeps the key it got at capture, and the journal
skips a key it holds (a retry after a commit whose outcome was lost, or a spool
journaled again after a kill -9).

A request cancelled (the agent hung up) while its exchange waits for room in the queue
hands the exchange to the writer anyway (`_strand`): it is journaled in this process's
life and its spool can empty, where it used to stay spooled until the next proxy start
(the wait ran in the event loop's executor, whose queued calls a cancellation drops).

Deferred tasks (logging an injection) run on this thread after each batch; one the
database refuses now is retried on the same schedule (deferred_tasks.py). `defer` never
waits, even while the queue is full: a recall worker calls it after its search, and
used to wait there for room, so a request whose recall had finished could still miss
its recall budget. Its task is handed to the writer beside the queue, like a stranded
capture, and bounded (deferred_tasks.TASK_BOUND, then dropped with one warning).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engram.backoff import Backoff
from engram.errors import log_failure
from engram.sources.capture_spool import MAX_SPOOL_BYTES, Spool, adopt_dead, new_key, quarantine
from engram.sources.deferred_tasks import (
    RETRY_FIRST_S,
    RETRY_MAX_S,
    TASK_ATTEMPTS,
    TASK_BOUND,
    DeferredTasks,
    wait_cures,
)
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
BATCH = 200  # exchanges per transaction at most
REFUSALS = 3  # failures alone, with an error no wait cures, before an exchange is quarantined


class _Entry:
    """A capture on the queue: its key, the spool file that holds it (None: memory only),
    who waits for its commit (`done`, when it could not be spooled), and its retries."""

    __slots__ = ("done", "due", "home", "item", "key", "refusals", "settled")

    def __init__(
        self, item: Captured, key: str, home: Spool | None, done: Callable[[], None] | None = None
    ) -> None:
        self.item = item
        self.key = key
        self.home = home
        self.done = done
        self.refusals = 0  # failed alone with an error a wait does not cure; >0: tried alone
        self.due = 0.0  # monotonic time of its next attempt
        self.settled = False  # journaled, or quarantined

    @property
    def spooled(self) -> bool:
        return self.home is not None

    @property
    def size(self) -> int:
        raw, response, _ = self.item
        return len(raw.body or b"") + (len(response.body or b"") if response is not None else 0)


class CaptureWriter:
    """A bounded queue drained by one thread that journals exchanges in batches.

    Batching keeps up with a busy proxy (one transaction per batch, not per exchange);
    when the queue is full the request waits for room instead of dropping an exchange.
    What fails to commit waits in `_backlog` for its retry (see the module's docstring).
    Deferred tasks (logging an injection) ride the same thread, handed over beside the
    queue (`defer` never waits).
    """

    def __init__(
        self,
        capture: CaptureFn | None,
        size: int,
        stats: ProxyStats,
        spool_dir: Path | None = None,
        *,
        task_attempts: int = TASK_ATTEMPTS,
        task_bound: int = TASK_BOUND,
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
        self._adopted: list[Spool] = []  # dead proxies' spools this one journals
        self._backlog: list[_Entry] = []  # not committed yet: failed, or held by a failure
        self._next_due = 0.0  # the earliest `due` in the backlog
        # the database failed: nothing is tried before `until`
        self._backoff = Backoff(RETRY_FIRST_S, RETRY_MAX_S)
        self._failing_since: float | None = None
        self._unspooled_bytes = 0  # held in memory only (no room in the spool)
        # Captures whose request went away while they waited for room in the queue.
        self._stranded: deque[_Entry] = deque()
        self._room_lock = threading.Lock()
        self._room_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self.tasks = DeferredTasks(None, task_attempts, task_bound)
        self.thread = threading.Thread(target=self._run, name="engram-capture", daemon=True)
        self.thread.start()

    def _spooled(self, item: Captured) -> _Entry:
        key = new_key()
        home = self.spool if self.spool is not None and self.spool.append(key, item) else None
        return _Entry(item, key, home)

    async def _enqueue(self, entry: _Entry) -> None:
        """Queue `entry`, waiting on the event loop for room (the writer wakes the
        waiters whenever it takes from the queue). Cancelled while waiting, the entry is
        handed to the writer all the same (`_strand`), and the cancellation goes on."""
        try:
            self.queue.put_nowait(entry)
            return
        except queue.Full:
            self.stats.capture_waits += 1
        loop = asyncio.get_running_loop()
        try:
            while True:
                room: asyncio.Future[None] = loop.create_future()
                with self._room_lock:  # registered before the last look: no wake-up missed
                    self._room_waiters.append((loop, room))
                try:
                    self.queue.put_nowait(entry)
                    return
                except queue.Full:
                    await room
        except asyncio.CancelledError:
            self._strand(entry)
            raise

    def _strand(self, entry: _Entry) -> None:
        """Give the writer `entry` without waiting for room. The writer takes stranded
        entries in every pass; one is queued to wake it, and when the queue is full it
        holds items whose pass comes after this append."""
        self._stranded.append(entry)
        with contextlib.suppress(queue.Full):
            self.queue.put_nowait(_wake)

    def _room_made(self) -> None:
        with self._room_lock:
            waiters, self._room_waiters = self._room_waiters, []
        for loop, room in waiters:
            with contextlib.suppress(RuntimeError):  # its loop has closed
                loop.call_soon_threadsafe(_resolve, room)

    async def put_durable(self, item: Captured, timeout: float) -> bool:
        """Queue `item` and return once a kill -9 can no longer lose it: at once when it
        is spooled, else when it is journaled (or failed to be), at most `timeout`
        seconds; False when that wait ran out (the item stays queued). While the journal
        fails (a retry is pending), an unspooled item does not wait: its commit would
        not come within the wait, and every response would pay it in full."""
        entry = self._spooled(item)
        if entry.spooled or self._failing_since is not None:
            await self._enqueue(entry)
            return entry.spooled
        loop = asyncio.get_running_loop()
        journaled: asyncio.Future[None] = loop.create_future()

        def done() -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits
                loop.call_soon_threadsafe(_resolve, journaled)

        entry.done = done
        await self._enqueue(entry)
        try:
            await asyncio.wait_for(asyncio.shield(journaled), timeout)
        except TimeoutError:
            return False
        return True

    def put_nowait(self, item: Captured) -> None:
        """Queue `item` without waiting: a capture from a cancelled handler or a closed
        WebSocket (on the event loop, which must not block) is stranded when the queue
        is full."""
        entry = self._spooled(item)
        try:
            self.queue.put_nowait(entry)
        except queue.Full:
            self._strand(entry)

    def defer(self, fn: Callable[[], None]) -> None:
        """Run `fn` on the writer thread after its next batch, never waiting (a recall
        worker calls this; its request waits for it). The first task handed over since
        the writer's last pass queues a wake-up; when the queue is full, the writer is
        busy with it and takes the task in the pass it is about to make."""
        if self.tasks.add(fn):
            with contextlib.suppress(queue.Full):
                self.queue.put_nowait(_wake)

    def close(self, timeout: float = 30.0) -> None:
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join(timeout)
        if not self.thread.is_alive():
            if self._stranded or self.tasks.pending:  # after the writer's last pass
                self._flush([], final=True)
            for spool in [*self._adopted, *([self.spool] if self.spool is not None else [])]:
                spool.close()

    def _run(self) -> None:
        if self.spool_dir is not None and self.capture is not None:
            self._adopt(self.spool_dir)
        while True:
            due = self._due()
            if due is not None:
                wait = due - time.monotonic()
                try:
                    item = self.queue.get(timeout=wait) if wait > 0 else self.queue.get_nowait()
                except queue.Empty:
                    self._flush([])  # a retry is due
                    continue
            else:
                item = self.queue.get()
            if item is None:
                self._flush([], final=True)
                return
            batch = self._gather(item)
            self._room_made()
            if batch[-1] is None:
                self._flush(batch[:-1], final=True)
                return
            self._flush(batch)

    def _due(self) -> float | None:
        """When the next retry is due (monotonic), or None when nothing waits for one."""
        dues = [max(self._backoff.until, self._next_due)] if self._backlog else []
        if self.tasks.held:
            dues.append(self.tasks.backoff.until)
        if self.tasks.pending:  # its wake-up found the queue full: this pass takes it
            dues.append(0.0)
        return min(dues, default=None)

    def _adopt(self, directory: Path) -> None:
        """What proxies killed before their writer committed left behind: journaled
        first, with the same retries as this proxy's own (their files stay until then)."""
        found = 0
        try:
            for spool, items in adopt_dead(directory):
                self._adopted.append(spool)
                self._backlog.extend(_Entry(item, key, spool) for key, item in items)
                found += len(items)
        except OSError as exc:
            log.warning("cannot read the spools stopped proxies left in %s: %s", directory, exc)
        if found:
            log.info("journaling %d exchanges a stopped proxy had spooled", found)
            self._flush([])

    def _gather(self, first: Any) -> list[Any]:
        """`first` and what queues behind it, ending with None when told to stop.

        A burst is let gather (GATHER_S) so many exchanges share one transaction: one
        per exchange costs the request path, which shares the interpreter, far more.
        A response waiting for its row (`put_durable` without a spool) ends the wait at
        once: an idle proxy must not add the gather time to an answer (measured: +19 ms with a fixed
        wait, ~2 ms without), and a busy one batches anyway (what queues during one
        commit is the next batch). That includes a durable capture arriving while the
        wake-up of an injection log (a deferred task, handed over a few ms before its
        exchange ends) gathers: it used to sit out the rest of the wait, +5-8 ms on
        every request that got memory.
        """
        batch = [first]
        deadline = time.monotonic() + (0.0 if _waited_for(first) else GATHER_S)
        while len(batch) < BATCH:
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

    def _flush(self, batch: list[Any], final: bool = False) -> None:
        entries = [b for b in batch if isinstance(b, _Entry)]
        while self._stranded:
            entries.append(self._stranded.popleft())
        if self.capture is not None:
            try:
                self._hold(entries)
                if self._backlog:
                    self._journal(final)
            except Exception as exc:  # a bug here must not stop the writer: the spool keeps them
                log_failure(log, "the capture writer failed; its exchanges stay spooled", exc)
                self._backoff.until = time.monotonic() + RETRY_MAX_S  # not in a tight loop
        for entry in entries:
            if entry.done is not None:
                entry.done()
        self.tasks.run(final)

    def _hold(self, entries: list[_Entry]) -> None:
        """New exchanges join the backlog, due now; one that is in no spool counts
        against the same bound as the spool (memory), past which it is dropped, loudly."""
        for entry in entries:
            if (
                entry.home is None
                and self._failing_since is not None
                and self._unspooled_bytes + entry.size > MAX_SPOOL_BYTES
            ):
                self.stats.capture_failed += 1
                log.error(
                    "the journal has refused writes for %.0f s and %d MB of exchanges wait "
                    "in memory: dropping exchange %s",
                    time.monotonic() - self._failing_since,
                    self._unspooled_bytes >> 20,
                    entry.key,
                )
                continue
            if entry.home is None:
                self._unspooled_bytes += entry.size
            self._backlog.append(entry)
            self._next_due = 0.0

    def _journal(self, final: bool) -> None:
        """One pass over the backlog: what is due is committed in batches; a batch that
        fails is held (the database) or split (an exchange); see the module docstring.
        `final`: the proxy stops, so everything is tried once, due or not."""
        now = time.monotonic()
        if not self._backoff.ready() and not final:
            return
        due = [e for e in self._backlog if not e.settled and (final or e.due <= now)]
        work: deque[list[_Entry]] = deque(_batches(due))
        committed = blocked = False
        while work:
            group = work.popleft()
            try:
                assert self.capture is not None
                self.capture([(e.key, e.item) for e in group])
            except Exception as exc:
                if wait_cures(exc):
                    self._blocked(exc)
                    blocked = True
                    break
                if len(group) > 1:  # which one? halves, now, down to one; the others commit
                    mid = len(group) // 2
                    work.extendleft([group[mid:], group[:mid]])
                else:
                    self._refused(group[0], exc)
                continue
            self._settle(group)
            self.stats.captured += len(group)
            committed = True
        if committed and not blocked:
            self._backoff.succeeded()
            if self._failing_since is not None:
                log.warning(
                    "the journal takes writes again: exchanges held for %.1f s are journaled",
                    time.monotonic() - self._failing_since,
                )
                self._failing_since = None
        self._backlog = [e for e in self._backlog if not e.settled]
        self._next_due = min((e.due for e in self._backlog), default=0.0)
        if final and self._backlog:
            kept = sum(e.spooled for e in self._backlog)
            log.warning(
                "stopping with %d exchanges not journaled: %d stay in the spool for the "
                "next proxy on this database, %d are lost",
                len(self._backlog),
                kept,
                len(self._backlog) - kept,
            )

    def _blocked(self, exc: Exception) -> None:
        """The database takes no writes now: hold everything, retry after a backoff."""
        delay = self._backoff.failed()
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            log.warning(
                "cannot journal captured exchanges (%s); %d held (%d in the spool), "
                "retrying from %g s up to every %g s",
                exc,
                len(self._backlog),
                sum(e.spooled for e in self._backlog),
                delay,
                RETRY_MAX_S,
            )

    def _refused(self, entry: _Entry, exc: Exception) -> None:
        """`entry` failed alone with an error no wait cures: retried alone a little
        later, REFUSALS times in all, then quarantined."""
        entry.refusals += 1
        if entry.refusals < REFUSALS:
            entry.due = time.monotonic() + RETRY_FIRST_S * 2 ** (entry.refusals - 1)
            log.debug("exchange %s refused (%s): retrying it alone", entry.key, exc)
            return
        reason = f"{type(exc).__name__}: {exc}"[:500]
        raw = entry.item[0]
        where = None
        if self.spool_dir is not None:
            where = quarantine(self.spool_dir, entry.key, entry.item, reason)
        if where is not None:
            outcome = f"kept in {where} (`engram status` counts it)"
        else:
            outcome = "and cannot be kept: lost"
        log.error(
            "exchange %s (%s %s%s) cannot be journaled, %d attempts failed with %s; %s",
            entry.key,
            raw.method,
            raw.host,
            raw.path.split("?")[0],
            entry.refusals,
            reason,
            outcome,
        )
        self.stats.capture_failed += 1
        self._settle([entry])

    def _settle(self, entries: list[_Entry]) -> None:
        """Journaled or quarantined: off the backlog, and off its spool."""
        homes: Counter[Spool] = Counter()
        for e in entries:
            if e.settled:  # a pass that failed half-way left it on the backlog
                continue
            e.settled = True
            if e.home is not None:
                homes[e.home] += 1
            else:
                self._unspooled_bytes -= e.size
        for home, n in homes.items():
            home.journaled(n)


def _wake() -> None:
    """Queued to wake the writer for a stranded capture or a deferred task; does
    nothing itself."""


def _batches(entries: list[_Entry]) -> list[list[_Entry]]:
    """Transactions for `entries`: up to BATCH together; one refused before goes alone."""
    out: list[list[_Entry]] = []
    run: list[_Entry] = []
    for e in entries:
        if e.refusals:
            out.append([e])
        else:
            run.append(e)
            if len(run) == BATCH:
                out.append(run)
                run = []
    return [*out, run] if run else out


def _waited_for(entry: Any) -> bool:
    return isinstance(entry, _Entry) and entry.done is not None


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def journal_capture(store: Any, project_hint: str | None, policy: CapturePolicy) -> CaptureFn:
    """The standard capture: one journal row per exchange, exactly once, a batch per
    transaction (`policy`: the config's journaling.CapturePolicy). One attempt, which
    waits up to the store's busy timeout for a lock: the writer retries a failure."""
    from engram import journaling

    def capture(items: list[tuple[str, Captured]]) -> None:
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

    return capture
