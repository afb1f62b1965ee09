"""Per-day aggregates for the web UI's health page (plain sqlite3 connection).

Captures per day and source, agent requests and injections per day, analyzer tokens
and dollars per day and project. Counting 100k journal rows by day costs ~100 ms on a
loaded 2-core machine (SQLite has no counted index), so the UI keeps past days'
counts (`engram/ui/daily.py`) and asks here only for the days it lacks; `mark` and
`rows_after` tell it when rows it counted have gone.
"""

from __future__ import annotations

import sqlite3
from typing import Any

COUNTED = ("exchanges", "events")  # the tables per-day counts are kept for


def mark(conn: sqlite3.Connection, table: str) -> tuple[int, int]:
    """(rows, highest id) of `table`: cheap, to tell whether rows that were already
    counted have since been deleted (a cache of past days is then stale)."""
    if table not in COUNTED:
        raise ValueError(table)
    # Two statements: a bare count(*) is SQLite's fast page count, not a row walk.
    count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    top = conn.execute(f"SELECT max(id) FROM {table}").fetchone()[0]
    return int(count), int(top or 0)


def rows_after(conn: sqlite3.Connection, table: str, row_id: int) -> int:
    if table not in COUNTED:
        raise ValueError(table)
    return int(conn.execute(f"SELECT count(*) FROM {table} WHERE id > ?", (row_id,)).fetchone()[0])


def journal_days(
    conn: sqlite3.Connection, since: str, until: str | None = None
) -> dict[str, dict[str, Any]]:
    """Per day (UTC) in [since, until): exchanges by source; agent requests (conversation
    exchanges: side calls like title generation are not requests); and, where the
    journal keeps recall decisions, how many of those requests were given memory
    (`injected`) and how many went through recall without getting any (`not_injected`)."""
    from engram.store.journal_pages import AUDIT, has_audit

    outcome = (
        f"CASE WHEN {AUDIT} IS NULL THEN NULL "
        f"WHEN json_extract({AUDIT}, '$.outcome') = 'injected' THEN 1 ELSE 0 END"
        if has_audit(conn)
        else "NULL"
    )
    sql = (
        f"SELECT substr(captured_at, 1, 10) AS day, source, kind, {outcome}, count(*) "
        "FROM exchanges WHERE captured_at >= ?"
        + (" AND captured_at < ?" if until else "")
        + " GROUP BY 1, 2, 3, 4"
    )
    out: dict[str, dict[str, Any]] = {}
    for day, source, kind, injected, n in conn.execute(sql, (since, until) if until else (since,)):
        entry = out.setdefault(
            str(day), {"sources": {}, "requests": 0, "injected": 0, "not_injected": 0}
        )
        entry["sources"][source] = entry["sources"].get(source, 0) + int(n)
        if kind == "conversation":
            entry["requests"] += int(n)
            if injected is not None:
                entry["injected" if injected else "not_injected"] += int(n)
    return out


def injection_days(
    conn: sqlite3.Connection, since: str, until: str | None = None
) -> dict[str, dict[str, Any]]:
    """Per day in [since, until): requests that got memory and memories injected, from
    the `inject` events (one per memory, sharing the time and conversation)."""
    sql = (
        "SELECT substr(at, 1, 10) AS day, "
        "count(DISTINCT at || json_extract(detail, '$.conversation')), count(*) "
        "FROM events WHERE action = 'inject' AND at >= ?"
        + (" AND at < ?" if until else "")
        + " GROUP BY day"
    )
    return {
        str(day): {"with_memory": int(requests), "memories": int(memories)}
        for day, requests, memories in conn.execute(sql, (since, until) if until else (since,))
    }
