"""Analysis on a schedule: when a run is due, the watcher's and the proxy's analyze job
(with its backoff), and the lines a run reports.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from engram.analyzer import validate
from engram.analyzer.backends import Backend
from engram.analyzer.runner import Analyzer, RunReport
from engram.backoff import Backoff
from engram.config import AnalyzerConfig
from engram.store import journal, schema
from engram.store.db import Store


def analysis_due(store: Store, batch: int, max_wait: float) -> bool:
    """A full batch is pending, or the oldest pending exchange has waited max_wait: the
    rule every capture path uses, so the last turns of a session are never stranded."""
    from engram.store import pause

    with store.read() as conn:
        if pause.read_current(conn) is not None:
            return False  # paused: nothing is analysed
        count, oldest = journal.pending_summary(conn)
    if not count or oldest is None:
        return False
    if count >= batch:
        return True
    return time.time() - schema.parse_iso(oldest).timestamp() >= max_wait


def describe(report: RunReport) -> list[str]:
    """One line per change for logs and the terminal. Memory text is redacted again
    here: logs are shared and kept, and a log line must never be where a secret that
    slipped past an older redactor resurfaces."""
    from engram.redact import redact

    lines = []
    for m in report.added:
        lines.append(f"   stored: {redact(m.content)} ({m.id})")
    for old, new in report.superseded:
        lines.append(f"   updated: {redact(new.content)} ({new.id}, replaces {old})")
    for old in report.forgotten:
        lines.append(f"   forgot: {old}")
    for m in report.held:
        lines.append(f"   held for review: {redact(m.content)} ({m.id}; `engram review`)")
    return lines


def make_daemon_hook(
    store: Store,
    backend: Backend,
    settings: AnalyzerConfig,
    *,
    embedder: validate.Embedder | None = None,
) -> Callable[[Any], None]:
    """The watcher's analyze job: run, then report in the original guide's style."""
    analyzer = Analyzer(store, backend, settings, embedder=embedder)
    warned_auth: list[bool] = [False]
    backoff = Backoff()

    def hook(reporter: Any) -> None:
        from engram.store import pause

        if not backoff.ready():
            return
        with store.read() as conn:
            if pause.read_current(conn) is not None:
                return  # paused: the pending exchanges wait for `engram resume`
            pending, _oldest = journal.pending_summary(conn)
        if not pending:
            return
        reporter.event(
            "analyze_start", f"Running analyzer on {pending} exchanges...", pending=pending
        )
        started = time.monotonic()
        report = analyzer.run()
        if report.auth_error:
            delay = backoff.failed()
            if not warned_auth[0]:
                reporter.error(
                    "analyzer_auth",
                    f"{report.auth_error}; capture continues, analysis retries in {delay:.0f}s",
                )
                warned_auth[0] = True
            return
        warned_auth[0] = False
        if report.failed_batches:
            delay = backoff.failed()
            for error in report.errors:
                reporter.warn(
                    "analyze_failed", f"analyzer batch failed: {error} (retry in {delay:.0f}s)"
                )
        else:
            backoff.succeeded()
        reporter.event(
            "analyzed",
            f"   -> {len(report.added)} new, {len(report.superseded)} updated, "
            f"{len(report.forgotten)} forgotten, {report.duplicates} already known"
            + (f", {len(report.held)} held for review" if report.held else "")
            + (f", {report.capped} over the command limit" if report.capped else "")
            + " "
            f"({report.input_tokens:,} tokens in, ${report.cost_usd:.4f}, "
            f"{time.monotonic() - started:.1f}s)",
            added=[m.id for m in report.added],
            held=[m.id for m in report.held],
            capped=report.capped,
            rescoped=report.rescoped,
            exchanges=report.exchanges,
            input_tokens=report.input_tokens,
            output_tokens=report.output_tokens,
            cost_usd=round(report.cost_usd, 6),
            failed_batches=report.failed_batches,
        )
        for line in describe(report):
            reporter.event("memory", line, level="success")

    return hook
