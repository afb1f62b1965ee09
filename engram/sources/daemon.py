"""`engram mitmproxy` as a long-running service: scheduling, backoff, shutdown.

An APScheduler poll job runs every interval (never two at once; missed runs coalesce).
After each poll it decides whether analysis is due (a full batch, or the oldest pending
exchange has waited max-wait) and, if so, starts the analyze job on a second worker,
so a slow analyzer never delays capture. An optional mirror job (MuninnDB sync) runs on
its own interval, never two at once. SIGINT/SIGTERM let the running step finish and
commit, then the process exits 0. mitmweb being down is not an error: the watcher says
so once, backs off, and carries on when mitmweb is back.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from engram.cli.reporter import Reporter
from engram.errors import EngramError
from engram.sources.mitmweb import MitmwebAuthError, MitmwebUnavailable
from engram.sources.watcher import PollResult
from engram.store import state
from engram.store.db import Store

log = logging.getLogger("engram.daemon")

# Runs the analyzer over pending exchanges and reports what it stored; None = capture only.
AnalyzeFn = Callable[[Reporter], Any]
# Pushes queued memory changes to MuninnDB (engram.cli.mirror.daemon_hook); None = no mirror.
SyncFn = Callable[[Reporter], Any]

MAX_BACKOFF = 60.0


class PollSource(Protocol):
    """What the daemon polls: the mitmweb watcher, the flow-file follower."""

    store: Store

    def poll(self) -> PollResult: ...


@dataclass
class Schedule:
    interval: float = 5.0
    batch: int = 10
    max_wait: float = 60.0


def describe_poll(result: PollResult) -> str:
    text = (
        f"Fetched {result.flows} new flows -> {result.llm} LLM requests -> "
        f"captured {result.bytes / 1024:.1f} KB"
    )
    extra = []
    if result.captured:
        extra.append(f"{result.captured} journaled ({result.pending} to analyze)")
    if result.duplicates:
        extra.append(f"{result.duplicates} already journaled")
    if result.in_flight:
        extra.append(f"{result.in_flight} in flight")
    if result.failed:
        extra.append(f"{result.failed} with errors")
    if result.withheld:
        extra.append(f"{result.withheld} withheld (paused or an ignored project)")
    if result.pruned:
        extra.append(f"{result.pruned} pruned")
    return text + (" (" + ", ".join(extra) + ")" if extra else "")


class Daemon:
    def __init__(
        self,
        watcher: PollSource,
        reporter: Reporter,
        schedule: Schedule,
        analyze: AnalyzeFn | None = None,
        sync: SyncFn | None = None,
        sync_interval: float = 30.0,
    ) -> None:
        self.watcher = watcher
        self.reporter = reporter
        self.schedule = schedule
        self.analyze = analyze
        self.sync = sync
        self.sync_interval = sync_interval
        self._syncing = threading.Lock()
        self._backoff = 0.0
        self._next_try = 0.0
        self._down_since: float | None = None
        self._auth_reported = False
        self._analyzing = threading.Lock()
        self._scheduler: Any = None

    # -- one step each ---------------------------------------------------------------

    def poll_once(self) -> PollResult | None:
        """One poll with outage handling; None when mitmweb could not be asked."""
        now = time.monotonic()
        if now < self._next_try:
            return None
        try:
            result = self.watcher.poll()
        except MitmwebAuthError as exc:
            self._fail(exc, auth=True)
            return None
        except MitmwebUnavailable as exc:
            self._fail(exc, auth=False)
            return None
        self._record_poll(
            describe_poll(result),
            ok=True,
            flows=result.flows,
            captured=result.captured,
            pending=result.pending,
        )
        if self._down_since is not None:
            self.reporter.event("mitmweb_back", "mitmweb is reachable again", level="success")
        self._down_since = None
        self._backoff = 0.0
        self._auth_reported = False
        if result.flows or result.captured:
            self.reporter.event(
                "poll",
                describe_poll(result),
                flows=result.flows,
                llm=result.llm,
                captured=result.captured,
                bytes=result.bytes,
                pending=result.pending,
                duplicates=result.duplicates,
                in_flight=result.in_flight,
                failed=result.failed,
                pruned=result.pruned,
            )
        return result

    def _record_poll(self, summary: str, *, ok: bool, **fields: Any) -> None:
        """What `engram status` shows as the last poll; never fatal."""
        import json

        from engram.store import schema

        store = getattr(self.watcher, "store", None)
        if store is None:
            return
        value = json.dumps({"at": schema.now_iso(), "ok": ok, "summary": summary, **fields})
        try:
            with store.write() as session:
                state.put(session, state.LAST_POLL, value)
        except Exception as exc:  # housekeeping must never break a poll
            log.warning("could not record the poll: %s", exc)

    def _fail(self, exc: EngramError, *, auth: bool) -> None:
        self._record_poll(str(exc), ok=False)
        self._backoff = min(MAX_BACKOFF, max(self.schedule.interval, self._backoff * 2 or 1.0))
        self._next_try = time.monotonic() + self._backoff
        if auth:
            if not self._auth_reported:
                self.reporter.error("mitmweb_auth", str(exc))
                self._auth_reported = True
            return
        if self._down_since is None:
            self._down_since = time.monotonic()
            self.reporter.warn(
                "mitmweb_down",
                f"{exc.message}; retrying with backoff (up to {MAX_BACKOFF:.0f} s)",
                error=str(exc),
            )

    def analysis_due(self) -> bool:
        from engram.analyzer.runner import analysis_due

        return self.analyze is not None and analysis_due(
            self.watcher.store, self.schedule.batch, self.schedule.max_wait
        )

    def analyze_now(self) -> None:
        self._guarded(self.analyze, self._analyzing, "analyze", "analyzer run")

    def sync_now(self) -> None:
        """The mirror job; a failure is reported and the next run tries again."""
        self._guarded(self.sync, self._syncing, "mirror", "mirror sync")

    def _guarded(
        self, job: Callable[[Reporter], Any] | None, lock: threading.Lock, event: str, what: str
    ) -> None:
        """Run a job unless it is already running; the daemon outlives any failure."""
        if job is None or not lock.acquire(blocking=False):
            return
        try:
            job(self.reporter)
        except EngramError as exc:
            self.reporter.error(event, str(exc))
        except Exception as exc:
            log.exception("%s failed", what)
            self.reporter.error(event, f"{what} failed: {exc!r}")
        finally:
            lock.release()

    def tick(self) -> None:
        """The poll job: capture, then start analysis if due."""
        try:
            self.poll_once()
            if self.analysis_due() and self._scheduler is not None:
                self._scheduler.add_job(
                    self.analyze_now, id="analyze", replace_existing=True, max_instances=1
                )
        except EngramError as exc:  # e.g. database locked for too long: try next tick
            self.reporter.error("poll", str(exc))
        except Exception as exc:
            log.exception("poll failed")
            self.reporter.error("poll", f"poll failed: {exc!r}")

    # -- running ---------------------------------------------------------------------

    def run_once(self) -> PollResult | None:
        result = self.poll_once()
        if self.analyze is not None:
            self.analyze_now()
        self.sync_now()
        return result

    def run_forever(self) -> None:
        from datetime import datetime

        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.blocking import BlockingScheduler

        scheduler = BlockingScheduler(
            executors={"default": ThreadPoolExecutor(3 if self.sync is not None else 2)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self._scheduler = scheduler
        scheduler.add_job(
            self.tick,
            "interval",
            seconds=self.schedule.interval,
            id="poll",
            next_run_time=datetime.now(),
        )
        if self.sync is not None:
            scheduler.add_job(
                self.sync_now,
                "interval",
                seconds=self.sync_interval,
                id="mirror",
                next_run_time=datetime.now(),
            )
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
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        try:
            scheduler.start()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        self.reporter.event("stopped", "stopped cleanly")
