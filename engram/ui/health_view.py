"""Health and cost: captures, injection rate, analyzer spend, mirror backlog, last poll,
and `engram doctor`'s checks (loaded after the page: they wait on the network)."""

from __future__ import annotations

import time
from typing import Any

from engram.store import usage
from engram.ui import charts
from engram.ui.web import Deps, Page, Req

DAYS = 30
DOCTOR_TTL_S = 60.0  # doctor asks mitmweb, the analyzer API and MuninnDB: not per click


def health(deps: Deps, req: Req) -> Page:
    from engram.status import gather

    days = charts.days_back(DAYS)
    since = days[0]
    with deps.store.read() as conn:
        captures = usage.captures_per_day(conn, since)
        requests = usage.requests_per_day(conn, since)
        injections = usage.injections_per_day(conn, since)
        analyzer = usage.analyzer_per_day(conn, since)
        status = gather(conn)

    by_source: dict[str, dict[str, float]] = {}
    for day, source, n in captures:
        by_source.setdefault(source, {})[day] = n
    with_memory = {d: float(v[0]) for d, v in injections.items()}
    without = {d: max(0.0, requests.get(d, 0) - with_memory.get(d, 0)) for d in days}
    asked = sum(requests.values())
    given = sum(v[0] for v in injections.values())

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
            "captured": sum(n for _d, _s, n in captures),
            "inject_chart": charts.stacked_bars(
                days, {"with memory": with_memory, "without": without}, label="requests"
            ),
            "asked": asked,
            "given": given,
            "rate": (given / asked) if asked else None,
            "cost_chart": charts.stacked_bars(
                days, cost_by_project, label="analyzer cost", fmt=lambda v: f"${v:,.2f}"
            ),
            "tokens_chart": charts.stacked_bars(days, tokens_by_project, label="analyzer tokens"),
            "projects": sorted(totals.items(), key=lambda kv: -kv[1]["cost_usd"]),
            "status": status,
            "mirror_on": bool(getattr(deps.config.muninn, "enabled", False)),
        },
    )


def doctor(deps: Deps, req: Req) -> Page:
    """The doctor's checks as a fragment, cached for a minute (`?fresh=1` re-runs)."""
    from engram.doctor import run_all

    cached = deps.doctor_cache.get("result")
    if cached is None or req.arg("fresh") or time.monotonic() - cached[0] > DOCTOR_TTL_S:
        checks = run_all(deps.config, deps.store.path)
        cached = (time.monotonic(), checks, time.time())
        deps.doctor_cache["result"] = cached
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
