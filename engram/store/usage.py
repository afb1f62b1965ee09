"""Per-day aggregates for the web UI's health page (plain sqlite3 connection).

Captures per day and source, conversation requests and injections per day, analyzer
tokens and dollars per day and project. The journal side walks `ix_exchanges_captured`
over the window only; at 100k exchanges in 30 days that is the page's biggest cost.
"""

from __future__ import annotations

import sqlite3
from typing import Any


def captures_per_day(conn: sqlite3.Connection, since: str) -> list[tuple[str, str, int]]:
    """(day, source, exchanges) for exchanges captured since `since` (ISO date)."""
    return [
        (str(day), str(source), int(n))
        for day, source, n in conn.execute(
            "SELECT substr(captured_at, 1, 10) AS day, source, count(*) FROM exchanges "
            "WHERE captured_at >= ? GROUP BY day, source ORDER BY day",
            (since,),
        )
    ]


def requests_per_day(conn: sqlite3.Connection, since: str) -> dict[str, int]:
    """Agent requests (conversation exchanges, side calls excluded) per day."""
    return {
        str(day): int(n)
        for day, n in conn.execute(
            "SELECT substr(captured_at, 1, 10) AS day, count(*) FROM exchanges "
            "WHERE captured_at >= ? AND kind = 'conversation' GROUP BY day",
            (since,),
        )
    }


def injections_per_day(conn: sqlite3.Connection, since: str) -> dict[str, tuple[int, int]]:
    """Per day: (requests that got memory, memories injected), from the `inject` events.
    One injection logs one event per memory, with the same time and conversation."""
    return {
        str(day): (int(requests), int(memories))
        for day, requests, memories in conn.execute(
            "SELECT substr(at, 1, 10) AS day, "
            "count(DISTINCT at || json_extract(detail, '$.conversation')), count(*) "
            "FROM events WHERE action = 'inject' AND at >= ? GROUP BY day",
            (since,),
        )
    }


def analyzer_per_day(conn: sqlite3.Connection, since: str) -> list[dict[str, Any]]:
    """Analyzer calls per day and project: runs, tokens, dollars, memories added."""
    rows = conn.execute(
        "SELECT substr(started_at, 1, 10) AS day, coalesce(project, '') AS project, "
        "count(*) AS runs, sum(input_tokens + cache_read_tokens + cache_creation_tokens) "
        "AS input_tokens, sum(output_tokens) AS output_tokens, sum(cost_usd) AS cost_usd, "
        "sum(added) AS added, sum(status != 'ok') AS failed FROM analyzer_runs "
        "WHERE started_at >= ? GROUP BY day, project ORDER BY day",
        (since,),
    )
    return [{k: r[k] for k in r.keys()} for r in rows]  # noqa: SIM118 (a Row iterates values)
