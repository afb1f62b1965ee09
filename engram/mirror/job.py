"""The mirror's background job: sync with backoff, say each outage once, and say when
MuninnDB is back. Runs on the scheduler of whichever process has the mirror enabled
(`engram mitmproxy`, `engram proxy`); `engram mirror sync` runs a sync by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engram.errors import ConfigError

if TYPE_CHECKING:
    from engram.config import MuninnConfig
    from engram.mirror.sync import SyncReport
    from engram.sources.scheduler import Reporter
    from engram.store.db import Store


def describe(report: SyncReport) -> str:
    parts = [
        f"{report.remembered} remembered"
        + (f" ({report.deduplicated} already there)" if report.deduplicated else "")
    ]
    for n, what in (
        (report.restored, "restored"),
        (report.forgotten, "forgotten"),
        (report.linked, "linked"),
        (report.failed, "failed"),
        (report.retrying, "to retry"),
        (report.deferred, "waiting"),
    ):
        if n:
            parts.append(f"{n} {what}")
    return f"mirrored {report.memories} memories to MuninnDB: " + ", ".join(parts)


def sync_job(store: Store, m: MuninnConfig) -> Callable[[Reporter], None]:
    """The watcher's mirror job: sync with backoff, say each outage once, and say when
    MuninnDB is back."""
    from engram.mirror.sync import Syncer, build

    holder: dict[str, Any] = {"syncer": None, "down": False, "auth": False, "broken": False}

    def run(reporter: Reporter) -> None:
        syncer: Syncer | None = holder["syncer"]
        if holder["broken"]:
            return
        if syncer is None:
            try:
                syncer = build(store, m, lambda msg: reporter.warn("mirror", msg))
            except ConfigError as exc:  # e.g. a token over plain HTTP: say it once, stop
                holder["broken"] = True
                reporter.error("mirror_config", f"mirror disabled: {exc}")
                return
            holder["syncer"] = syncer
        report = syncer.run()
        if report.skipped:
            return
        if report.stopped:
            if report.auth_error and not holder["auth"]:
                reporter.error("mirror_auth", report.stopped)
            elif not report.auth_error and not holder["down"]:
                reporter.warn(
                    "mirror_down",
                    f"{report.stopped}; memory changes stay queued, retrying with backoff",
                )
            holder["auth" if report.auth_error else "down"] = True
            return
        if holder["down"] or holder["auth"]:
            reporter.event("mirror_back", "MuninnDB is reachable again", level="success")
        holder["down"] = holder["auth"] = False
        if report.memories:
            reporter.event("mirror", describe(report), **report.to_dict())
        for error in report.errors:
            reporter.warn("mirror_failed", f"mirror: {error}")

    return run
