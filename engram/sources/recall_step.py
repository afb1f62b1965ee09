"""The proxy's and the addon's recall step: request -> query -> recall -> block + audit.

Two phases, so the request path never waits longer than it must:
- `prepare` runs on the event loop: parse the request (~0.3 ms for a 75 KB Claude Code
  body; JSON parsing holds the GIL wherever it runs), build the query, and answer at
  once what needs no search: a side call, no user turn, or the same turn as this
  conversation's previous request (a tool loop: the cached decision, in microseconds);
- `run` does the search on a worker thread; the caller waits at most the job's budget
  (`proxy.recall_budget_ms`, or `proxy.first_request_budget_ms` for a conversation's
  first request, which is seconds long anyway) and records `budget exceeded` past it.
  A worker that finds other jobs queued behind its own embeds half of their queries
  with its own in one model call first (recall/query_vectors.py), the other worker
  the next half: a burst costs a few batched calls on both cores instead of one call
  per request.

Every request gets an audit record (recall/audit.py) that the caller stores with the
exchange; injections are logged (use counts, `inject` events) on the caller's writer
thread, never on the request path.

Privacy: `<private>` passages never reach the query (which is logged with an injection
and may be sent to MuninnDB). While engram is paused, memories are still injected (using
what is stored records nothing new) but no injection is logged, and the exchange with its
audit record is not journaled at all (engram/journaling.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engram.recall.audit import Outcome, audit, budget_exceeded
from engram.wire.model import Format, RawRequest

log = logging.getLogger("engram.proxy")
BATCH = 16  # queued queries embedded with a worker's own, at most


@dataclass(slots=True)
class Decision:
    """What to do with one request: the block to inject (or None) and its audit."""

    block: str | None
    record: dict[str, Any]
    # The body walked once in `prepare` (wire/splice.py): `inject_bytes` splices the
    # block in without parsing it again (~0.3 ms of a 75 KB body, measured in-proxy).
    walked: Any = None


@dataclass(slots=True)
class Job:
    """A recall that needs a search, prepared on the event loop."""

    query: str
    project: str | None
    conversation: str
    budget_ms: float
    started: float = field(default_factory=time.perf_counter)
    walked: Any = None  # see Decision


class RecallStep:
    """Callable by the proxy and the addon; thread-safe."""

    def __init__(
        self,
        recaller: Any,
        project_hint: str | None,
        defer: Callable[[Callable[[], None]], Any],
        *,
        budget_ms: float = 50.0,
        first_request_budget_ms: float = 300.0,
    ) -> None:
        self.recaller = recaller
        self.project_hint = project_hint
        self.defer = defer
        self.budget_ms = budget_ms
        self.first_request_budget_ms = max(first_request_budget_ms, budget_ms)
        self._pending: list[tuple[Any, str]] = []
        self._lock = threading.Lock()
        # Jobs prepared and not yet picked up by a worker (their queries not embedded).
        self._queued: dict[int, Job] = {}

    # -- phase 1: on the event loop -------------------------------------------------------

    def prepare(self, body: bytes, fmt: Format, raw: RawRequest) -> Decision | Job:
        from engram.recall.query import query_from_exchange
        from engram.wire import parse_exchange
        from engram.wire.private import strip_texts
        from engram.wire.splice import walk

        started = time.perf_counter()
        walked = walk(body, fmt)  # parsed once: for the parser here, for injection later
        exchange = parse_exchange(
            raw,
            None,
            project_hint=self.project_hint,
            request_json=walked.value if walked is not None else None,
        )
        exchange.turns = strip_texts(exchange.turns)
        if exchange.kind.value != "conversation":
            return Decision(None, audit(Outcome.SIDE_CALL, f"{exchange.kind.value} request"))
        query = query_from_exchange(exchange) if exchange.turns else ""
        if not query:
            return Decision(None, audit(Outcome.NO_USER_TURN))
        conversation = exchange.conversation or ""
        cached = self.recaller.cached(query, exchange.project, conversation)
        if cached is not None:
            cached.timings_ms["total"] = (time.perf_counter() - started) * 1000
            block = cached.block_text if cached.injected else None
            return Decision(block, cached.audit(), walked)
        first = sum(1 for t in exchange.turns if t.role == "assistant") == 0
        budget = self.first_request_budget_ms if first else self.budget_ms
        job = Job(query, exchange.project, conversation, budget, started, walked)
        with self._lock:
            self._queued[id(job)] = job
        return job

    # -- phase 2: on a worker thread ------------------------------------------------------

    def run(self, job: Job) -> Decision:
        """The search, within the job's budget: a model still loading is waited for
        until just before the budget ends, then the request goes without memory."""
        recaller = self.recaller
        with self._lock:
            self._queued.pop(id(job), None)
        spent_ms = (time.perf_counter() - job.started) * 1000
        if spent_ms >= job.budget_ms:
            # The caller stopped waiting while this job queued (a burst of concurrent
            # requests on a 2-core machine): searching now would only delay the jobs
            # behind it, whose requests still wait. 16 concurrent clients: +458 ms at
            # p50 when every queued job still ran.
            return Decision(None, budget_exceeded(job.budget_ms))
        if not recaller.ready:
            left = job.budget_ms / 1000 - (time.perf_counter() - job.started) - 0.005
            if not recaller.wait_ready(left):
                return Decision(None, audit(Outcome.WARMING, "warming up: the model is loading"))
        # claimed only now: a job that gives up above leaves the queue to the other worker
        others = self._claim() if recaller.has_vectors else []
        if others:
            try:
                recaller.query_vectors.ahead(recaller.embedder, [job.query, *others])
            except Exception as exc:  # each recall embeds its own query then
                log.debug("embedding %d queued queries at once failed: %r", len(others), exc)
        result = recaller.recall(job.query, job.project, job.conversation or None, wait=False)
        result.timings_ms["total"] = (time.perf_counter() - job.started) * 1000
        if result.injected and result.block_text:
            self._log(result, job.conversation)
            return Decision(result.block_text, result.audit(), job.walked)
        return Decision(None, result.audit())

    def _claim(self) -> list[str]:
        """Half of the jobs queued behind this one (those whose caller still waits; at
        most BATCH): their queries, to embed with this one's. The
        other half is left for the other worker, so both cores embed a burst at once
        (one worker taking all of it halved the CPU but put the burst on one core)."""
        now = time.perf_counter()
        with self._lock:
            for key in [
                k for k, j in self._queued.items() if (now - j.started) * 1000 >= j.budget_ms
            ]:
                del self._queued[key]  # its caller gave up
            share = min(BATCH, (len(self._queued) + 1) // 2)
            claimed = list(self._queued)[:share]
            return [self._queued.pop(key).query for key in claimed]

    def __call__(self, body: bytes, fmt: Format, raw: RawRequest) -> Decision:
        """Both phases in one call (no budget: for callers without an event loop)."""
        job = self.prepare(body, fmt, raw)
        return job if isinstance(job, Decision) else self.run(job)

    # -- after the request ----------------------------------------------------------------

    def _log(self, result: Any, conversation: str) -> None:
        with self._lock:
            self._pending.append((result, conversation))
            first = len(self._pending) == 1
        if first:
            self.defer(self._flush())  # one writer task drains everything queued by then

    def _flush(self) -> Callable[[], None]:
        """The writer task that logs what is pending when it first runs. It keeps those
        items: the writer calls it again while the database refuses writes
        (sources/deferred_tasks.py), and later injections go to a task of their own."""
        from engram.store import pause

        items: list[tuple[Any, str]] | None = None

        def log_injections() -> None:
            nonlocal items
            if items is None:
                with self._lock:
                    items = self._pending[:]
                    self._pending.clear()
            # The writer thread's own read connection, kept open (opening one per flush
            # cost ~0.6 ms of the thread every request with memory waits behind).
            if pause.read_current(self.recaller.connection()) is not None:
                return  # paused: nothing is recorded, not even what was injected
            self.recaller.log_injections(items)

        return log_injections


def stop_background(step: Any) -> None:
    """Before a proxy or the addon exits: stop its recaller's background work and wait
    for it (Recaller.stop_background: a daemon thread inside onnxruntime at exit aborts
    the process). `step` is whatever recall function the edge was given."""
    stop = getattr(getattr(step, "recaller", None), "stop_background", None)
    if stop is not None:
        stop()


def make_recall(
    recaller: Any,
    project_hint: str | None,
    defer: Callable[[Callable[[], None]], Any],
    *,
    warm: bool = True,
    budget_ms: float = 50.0,
    first_request_budget_ms: float = 300.0,
) -> RecallStep:
    """The recall step for a proxy or the addon (the composition root passes this
    process's recaller and the proxy's budgets). With `warm`, the model loads, the index
    builds and a warm-up query is embedded in the background right away, so the first
    request does not pay for them."""
    if warm:
        recaller.warm(background=True)
    return RecallStep(
        recaller,
        project_hint,
        defer,
        budget_ms=budget_ms,
        first_request_budget_ms=first_request_budget_ms,
    )
