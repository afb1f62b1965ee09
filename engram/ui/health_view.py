"""Health and cost: captures, injection rate, analyzer spend, mirror backlog, last poll,
and `engram doctor`'s checks (loaded after the page: they wait on the network)."""

from __future__ import annotations

import json
import time
from typing import Any

from engram.store import journal, journal_pages, outbox, reader, runs, state, usage
from engram.store.journal_pages import ExchangeFilter
from engram.ui import charts
from engram.ui.daily import DayCache
from engram.ui.web import Deps, Page, Req

DAYS = 30
DOCTOR_TTL_S = 60.0  # doctor asks mitmweb, the analyzer API and MuninnDB: not per click


def caches(deps: Deps) -> tuple[DayCache, DayCache]:
    """The journal's and the injections' per-day counts, kept for the server's life."""
    with deps.lock:
        if "journal_days" not in deps.memo:
            deps.memo["journal_days"] = DayCache(usage.journal_days, "exchanges")
            deps.memo["injection_days"] = DayCache(usage.injection_days, "events")
        return deps.memo["journal_days"], deps.memo["injection_days"]


def warm(deps: Deps) -> None:
    """Count the past days now (server start) so the first visit does not wait."""
    days = charts.days_back(DAYS)
    journal_cache, injection_cache = caches(deps)
    with deps.store.read() as conn:
        journal_cache.get(conn, days)
        injection_cache.get(conn, days)


def status(conn: Any) -> dict[str, Any]:
    """`engram status`'s facts that stay cheap at 100k exchanges (its per-status count of
    the whole journal walks every row: here pending and failed are index ranges)."""
    raw_poll = state.read(conn, state.LAST_POLL)
    pending, _oldest = journal.pending_summary(conn)
    backlog = outbox.counts(conn)
    return {
        "last_poll": json.loads(raw_poll) if raw_poll else None,
        "captured_today": journal.captured_since(conn, charts.days_back(1)[0]),
        "pending": pending,
        "failed": journal_pages.count(conn, ExchangeFilter(status="failed")),
        "last_analyzer_run": runs.last(conn),
        "memories": reader.active_count(conn),
        "mirror_backlog": {k: n for k, n in backlog.items() if k != "done" and n},
    }


def health(deps: Deps, req: Req) -> Page:
    days = charts.days_back(DAYS)
    journal_cache, injection_cache = caches(deps)
    with deps.store.read() as conn:
        journal_by_day = journal_cache.get(conn, days)
        audited = any(e.get("injected") or e.get("not_injected") for e in journal_by_day.values())
        # Before the journal kept recall decisions: from the `inject` events instead.
        injected = {} if audited else injection_cache.get(conn, days)
        analyzer = runs.per_day_and_project(conn, days[0])
        facts = status(conn)

    by_source: dict[str, dict[str, float]] = {}
    for day, entry in journal_by_day.items():
        for source, n in entry.get("sources", {}).items():
            by_source.setdefault(source, {})[day] = n
    requests = {d: float(journal_by_day[d].get("requests", 0)) for d in days}
    if audited:
        with_memory = {d: float(journal_by_day[d].get("injected", 0)) for d in days}
        without = {d: float(journal_by_day[d].get("not_injected", 0)) for d in days}
        series = {
            "with memory": with_memory,
            "nothing injected": without,
            "not through recall": {d: requests[d] - with_memory[d] - without[d] for d in days},
        }
        asked = sum(with_memory.values()) + sum(without.values())
    else:
        with_memory = {
            d: float(min(requests[d], injected.get(d, {}).get("with_memory", 0))) for d in days
        }
        series = {
            "with memory": with_memory,
            "without": {d: requests[d] - with_memory[d] for d in days},
        }
        asked = sum(requests.values())
    given = sum(with_memory.values())

    cost_by_project: dict[str, dict[str, float]] = {}
    tokens_by_project: dict[str, dict[str, float]] = {}
    totals: dict[str, dict[str, float]] = {}
    for row in analyzer:
        project = row["project"] or "(no project)"
        cost_by_project.setdefault(project, {})[row["day"]] = row["cost_usd"] or 0.0
        tokens = (row["input_tokens"] or 0) + (row["output_tokens"] or 0)
        tokens_by_project.setdefault(project, {})[row["day"]] = tokens
        t = totals.setdefault(
            project, {"runs": 0, "tokens": 0, "cost_usd": 0.0, "added": 0, "failed": 0}
        )
        t["runs"] += row["runs"] or 0
        t["tokens"] += tokens
        t["cost_usd"] += row["cost_usd"] or 0.0
        t["added"] += row["added"] or 0
        t["failed"] += row["failed"] or 0

    return Page(
        "health.html",
        {
            "title": "Health and cost",
            "nav": "health",
            "days": DAYS,
            "captures_chart": charts.stacked_bars(days, by_source, label="captures"),
            "captured": sum(sum(e.get("sources", {}).values()) for e in journal_by_day.values()),
            "inject_chart": charts.stacked_bars(days, series, label="requests"),
            "audited": audited,
            "asked": asked,
            "given": given,
            "rate": (given / asked) if asked else None,
            "cost_chart": charts.stacked_bars(
                days, cost_by_project, label="analyzer cost", fmt=lambda v: f"${v:,.2f}"
            ),
            "tokens_chart": charts.stacked_bars(days, tokens_by_project, label="analyzer tokens"),
            "projects": sorted(totals.items(), key=lambda kv: -kv[1]["cost_usd"]),
            "status": facts,
            "mirror_on": bool(getattr(deps.config.muninn, "enabled", False)),
        },
    )


def doctor(deps: Deps, req: Req) -> Page:
    """The doctor's checks as a fragment, cached for a minute (`?fresh=1` re-runs)."""
    from engram.doctor import run_all

    cached = deps.memo.get("doctor")
    if cached is None or req.arg("fresh") or time.monotonic() - cached[0] > DOCTOR_TTL_S:
        checks = run_all(deps.config, deps.store.path)
        cached = (time.monotonic(), checks, time.time())
        deps.memo["doctor"] = cached
    _at, checks, wall = cached
    context: dict[str, Any] = {
        "checks": checks,
        "checked_at": time.strftime("%H:%M:%S", time.localtime(wall)),
    }
    return Page("_doctor.html", context)


ROUTES = (
    ("GET", "/health", health),
    ("GET", "/health/doctor", doctor),
)
