"""The one scheduler for engram's background work: capture sources, analysis, the mirror.

`engram mitmproxy` (the daemon), `engram proxy` and the transcript follower all run their
background jobs here, on one APScheduler:

- a **poll job** every interval: each `PollSource` (the mitmweb watcher, a flow-file
  follower, the transcript follower) is polled in turn, each with its own outage state
  (an unreachable source is said once, backed off exponentially up to a minute, and
  announced again when it is back); then, if analysis is due (a full batch is pending,
  or the oldest pending exchange has waited max-wait — the rule every door shares, so a
  session's last turns are never stranded), the analyze job is started on a second
  worker, so a slow analyzer never delays capture;
- the **mirror job** (MuninnDB sync) on its own interval;
- any extra periodic jobs a caller adds.

No job ever runs twice at once; missed runs coalesce. SIGINT/SIGTERM (in the blocking
mode) let the running step finish and commit, then the process exits 0. Every job
outlives its own failures: a failure is reported and the next run tries again.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from engram.errors import EngramError, log_failure, one_line
from engram.store.db import Store

log = logging.getLogger("engram.scheduler")

MAX_BACKOFF = 60.0


class Reporter(Protocol):
    """Where background jobs say what they did (engram/cli/reporter.py is the terminal's)."""

    def event(self, name: str, message: str, *, level: str = "info", **fields: Any) -> None: ...

    def warn(self, name: str, message: str, **fields: Any) -> None: ...

    def error(self, name: str, message: str, **fields: Any) -> None: ...


# A job: runs once, reports through the reporter.
JobFn = Callable[[Reporter], Any]


class SourceUnavailable(EngramError):
    """The source cannot be reached now (mitmweb down): back off, say so once."""


class SourceAuthError(EngramError):
    """The source refused engram's credentials: say so once, keep trying slowly."""


class PollOutcome(Protocol):
    """What one poll of a source did."""

    def describe(self) -> str:
        """One line for the terminal and `engram status`."""
        ...

    def fields(self) -> dict[str, Any]:
        """The numbers, for JSON logs and `engram status`."""
        ...

    @property
    def eventful(self) -> bool:
        """Whether anything happened (idle polls print nothing)."""
        ...


class PollSource(Protocol):
    """A capture source polled on the scheduler's interval."""

    name: str

    def poll(self) -> PollOutcome: ...


@dataclass
class Timing:
    interval: float = 5.0  # seconds between polls
    batch: int = 10  # analyze once this many exchanges are pending
    max_wait: float = 60.0  # ... or once the oldest pending one has waited this long
    sync_interval: float = 30.0  # seconds between mirror syncs


@dataclass
class Job:
    """An extra periodic job."""

    name: str
    fn: JobFn
    interval: float


@dataclass
class _Outage:
    """One source's health: backoff while it is unreachable or failing."""

    backoff: float = 0.0
    next_try: float = 0.0
    down_since: float | None = None
    auth_reported: bool = False
    failing: str | None = None  # the error said last time (said once, not every poll)


# A job that keeps failing the same way (a full disk) says so once, then again at most
# this often, instead of a line (or a traceback) on every run.
REPEAT_AFTER = 600.0


@dataclass
class Scheduler:
    store: Store
    reporter: Reporter
    timing: Timing
    sources: list[PollSource] = field(default_factory=list)
    analyze: JobFn | None = None
    sync: JobFn | None = None
    extra: list[Job] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._outages = {id(s): _Outage() for s in self.sources}
        self._locks: dict[str, threading.Lock] = {}
        self._said: dict[str, tuple[str | None, float]] = {}
        self._apscheduler: Any = None

    # -- one step each ---------------------------------------------------------------

    def poll_source(self, source: PollSource, *, once: bool = False) -> PollOutcome | None:
        """One poll with outage handling; None when the source could not be asked. With
        `once` (a single run, nothing will retry) an outage is one final error line."""
        outage = self._outages.setdefault(id(source), _Outage())
        if time.monotonic() < outage.next_try:
            return None
        try:
            outcome = source.poll()
        except (SourceAuthError, SourceUnavailable) as exc:
            if once:
                self._record_poll(source, str(exc), ok=False)
                self.reporter.error(f"{source.name}_down", str(exc))
            else:
                self._down(source, outage, exc, auth=isinstance(exc, SourceAuthError))
            return None
        self._record_poll(source, outcome.describe(), ok=True, **outcome.fields())
        if outage.down_since is not None:
            self.reporter.event(
                f"{source.name}_back", f"{source.name} is reachable again", level="success"
            )
        elif outage.failing is not None:
            self.reporter.event(
                f"{source.name}_back", f"{source.name}: polling works again", level="success"
            )
        outage.down_since, outage.backoff, outage.auth_reported = None, 0.0, False
        outage.failing = None
        if outcome.eventful:
            self.reporter.event("poll", outcome.describe(), source=source.name, **outcome.fields())
        return outcome

    def _down(self, source: PollSource, outage: _Outage, exc: EngramError, *, auth: bool) -> None:
        self._record_poll(source, str(exc), ok=False)
        outage.backoff = min(MAX_BACKOFF, max(self.timing.interval, outage.backoff * 2 or 1.0))
        outage.next_try = time.monotonic() + outage.backoff
        if auth:
            if not outage.auth_reported:
                self.reporter.error(f"{source.name}_auth", str(exc))
                outage.auth_reported = True
            return
        if outage.down_since is None:
            outage.down_since = time.monotonic()
            self.reporter.warn(
                f"{source.name}_down",
                f"{exc.message}; retrying with backoff (up to {MAX_BACKOFF:.0f} s)",
                error=str(exc),
            )

    def _record_poll(self, source: PollSource, summary: str, *, ok: bool, **fields: Any) -> None:
        """What `engram status` shows as the last poll; never fatal."""
        from engram.store import schema, state

        value = json.dumps(
            {"at": schema.now_iso(), "ok": ok, "source": source.name, "summary": summary, **fields}
        )
        try:
            with self.store.write() as session:
                state.put(session, state.LAST_POLL, value)
        except Exception as exc:  # housekeeping must never break a poll
            log.warning("could not record the poll: %s", exc)

    def analysis_due(self) -> bool:
        from engram.analyzer.schedule import analysis_due

        return self.analyze is not None and analysis_due(
            self.store, self.timing.batch, self.timing.max_wait
        )

    def analyze_now(self) -> None:
        self._guarded(self.analyze, "analyze", "analyzer run")

    def sync_now(self) -> None:
        """The mirror job; a failure is reported and the next run tries again."""
        self._guarded(self.sync, "mirror", "mirror sync")

    def _guarded(self, job: JobFn | None, name: str, what: str) -> None:
        """Run a job unless it is already running; the scheduler outlives any failure."""
        lock = self._locks.setdefault(name, threading.Lock())
        if job is None or not lock.acquire(blocking=False):
            return
        try:
            job(self.reporter)
            self._said.pop(name, None)
        except Exception as exc:
            message = str(exc) if isinstance(exc, EngramError) else f"{what} failed: {exc!r}"
            log.debug("%s failed", what, exc_info=exc)
            said, at = self._said.get(name, (None, 0.0))
            if message != said or time.monotonic() - at >= REPEAT_AFTER:
                self._said[name] = (message, time.monotonic())
                self.reporter.error(name, message)
        finally:
            lock.release()

    def _poll_failed(self, source: PollSource, exc: Exception) -> None:
        """A poll that raised (a full disk, a locked database): one line, not one per poll
        with a traceback, and the same backoff as an unreachable source."""
        outage = self._outages.setdefault(id(source), _Outage())
        message = str(exc) if isinstance(exc, EngramError) else f"poll failed: {exc!r}"
        log.debug("poll of %s failed", source.name, exc_info=exc)
        outage.backoff = min(MAX_BACKOFF, max(self.timing.interval, outage.backoff * 2 or 1.0))
        outage.next_try = time.monotonic() + outage.backoff
        if message != outage.failing:
            outage.failing = message
            self.reporter.error(
                "poll",
                f"{source.name}: {message} (retrying with backoff, up to {MAX_BACKOFF:.0f} s)",
            )

    def tick(self) -> None:
        """The poll job: capture from every source, then start analysis if due."""
        for source in self.sources:
            try:
                self.poll_source(source)
            except Exception as exc:
                self._poll_failed(source, exc)
        try:
            if self.analysis_due():
                if self._apscheduler is not None:
                    self._apscheduler.add_job(
                        self.analyze_now, id="analyze", replace_existing=True, max_instances=1
                    )
                else:
                    self.analyze_now()
        except EngramError as exc:
            self.reporter.error("analyze", str(exc))
        except Exception as exc:
            log_failure(log, "analysis check failed", exc)
            self.reporter.error("analyze", f"analysis check failed: {one_line(exc)}")

    # -- running ---------------------------------------------------------------------

    def run_once(self) -> list[PollOutcome | None]:
        """Poll every source once, analyze what is pending, sync the mirror; return."""
        outcomes = [self.poll_source(s, once=True) for s in self.sources]
        if self.analyze is not None:
            self.analyze_now()
        self.sync_now()
        for job in self.extra:
            self._guarded(job.fn, job.name, job.name)
        return outcomes

    def _build(self, blocking: bool) -> Any:
        from datetime import datetime

        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler
        from apscheduler.schedulers.blocking import BlockingScheduler

        # "skipped: maximum number of running instances reached" is the design (a slow
        # poll coalesces), not news: only real errors from APScheduler itself.
        logging.getLogger("apscheduler").setLevel(logging.ERROR)
        workers = 2 + (self.sync is not None) + len(self.extra)
        cls = BlockingScheduler if blocking else BackgroundScheduler
        scheduler = cls(
            executors={"default": ThreadPoolExecutor(workers)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        now = datetime.now()
        # Without sources the poll job only checks whether analysis is due, which is a
        # count(*) on an index: at most every few seconds, at least every max-wait/4.
        interval = (
            self.timing.interval if self.sources else min(5.0, max(0.5, self.timing.max_wait / 4))
        )
        if self.sources or self.analyze is not None:
            scheduler.add_job(self.tick, "interval", seconds=interval, id="poll", next_run_time=now)
        if self.sync is not None:
            scheduler.add_job(
                self.sync_now,
                "interval",
                seconds=self.timing.sync_interval,
                id="mirror",
                next_run_time=now,
            )
        for job in self.extra:
            scheduler.add_job(
                self._guarded,
                "interval",
                args=(job.fn, job.name, job.name),
                seconds=job.interval,
                id=job.name,
                next_run_time=now,
            )
        self._apscheduler = scheduler
        return scheduler

    def start(self) -> None:
        """Run in the background (a proxy process); `stop()` ends it."""
        self._build(blocking=False).start()

    def stop(self, wait: bool = True) -> None:
        """Let running jobs finish and commit; start nothing new."""
        if self._apscheduler is not None and self._apscheduler.running:
            self._apscheduler.shutdown(wait=wait)

    def run_forever(self) -> None:
        """Run in the foreground until SIGINT/SIGTERM (the daemon)."""
        scheduler = self._build(blocking=True)
        stopping = threading.Event()

        def stop(signum: int, _frame: Any) -> None:
            if stopping.is_set():
                return
            stopping.set()
            self.reporter.event(
                "stop", f"{signal.Signals(signum).name}: finishing the current step, then stopping"
            )
            # Running jobs finish and commit; nothing new starts.
            threading.Thread(target=scheduler.shutdown, kwargs={"wait": True}, daemon=True).start()

        previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            scheduler.start()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        self.reporter.event("stopped", "stopped cleanly")
