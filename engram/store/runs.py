"""The `analyzer_runs` table: one row per analyzer call, with its tokens and cost.

Read on the plain sqlite3 connection; a row is written (`insert`) by the analyzer runner
in the transaction that applies the call's result.
"""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

LAST_RUN_FIELDS = (
    "started_at",
    "backend",
    "model",
    "status",
    "added",
    "superseded",
    "forgotten",
    "error",
    "cost_usd",
)


def last(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """The most recent run, for `engram status`."""
    row = conn.execute(
        f"SELECT {', '.join(LAST_RUN_FIELDS)} FROM analyzer_runs ORDER BY id DESC LIMIT 1"
    ).fetchone()
    return dict(zip(LAST_RUN_FIELDS, row, strict=True)) if row else None


def guard(conn: sqlite3.Connection) -> dict[str, int]:
    """What the analyzer's guard did over all runs (engram/analyzer/policy.py)."""
    row = conn.execute(
        "SELECT coalesce(sum(capped), 0), coalesce(sum(rescoped), 0), "
        "coalesce(sum(quarantined), 0) FROM analyzer_runs"
    ).fetchone()
    return {"capped": int(row[0]), "rescoped": int(row[1]), "quarantined": int(row[2])}


def costs(conn: sqlite3.Connection, days: int = 14) -> dict[str, Any]:
    """Tokens and estimated cost of analyzer calls, per day (UTC) and per project."""
    select = (
        "count(*) AS runs, sum(input_tokens) AS input_tokens, "
        "sum(output_tokens) AS output_tokens, sum(cache_read_tokens) AS cache_read_tokens,"
        " sum(cache_creation_tokens) AS cache_creation_tokens, "
        "round(sum(cost_usd), 6) AS cost_usd, sum(added) AS added"
    )
    cols = (
        "runs",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_creation_tokens",
        "cost_usd",
        "added",
    )

    def rows(sql: str, *params: Any) -> list[dict[str, Any]]:
        return [
            {k: (r[k] if r[k] is not None else 0) for k in r.keys()}  # noqa: SIM118 (a Row iterates values)
            for r in conn.execute(sql, params)
        ]

    per_day = rows(
        f"SELECT substr(started_at, 1, 10) AS day, {select} FROM analyzer_runs "
        "GROUP BY day ORDER BY day DESC LIMIT ?",
        days,
    )
    per_project = rows(
        f"SELECT coalesce(project, '(none)') AS project, {select} "
        "FROM analyzer_runs GROUP BY project ORDER BY cost_usd DESC"
    )
    total = rows(f"SELECT {select} FROM analyzer_runs")[0]
    return {
        "total": {k: total.get(k, 0) for k in cols},
        "per_day": per_day,
        "per_project": per_project,
    }


def covering(conn: sqlite3.Connection, exchange_id: int) -> list[dict[str, Any]]:
    """The analyzer runs whose batch held this exchange (retries included)."""
    needle = f"%{exchange_id}%"
    rows = conn.execute(
        "SELECT id, started_at, backend, model, status, error, input_tokens, output_tokens, "
        "cost_usd, added, superseded, forgotten, exchanges FROM analyzer_runs "
        "WHERE exchanges LIKE ? ORDER BY id",
        (needle,),
    ).fetchall()
    out = []
    for row in rows:
        if exchange_id in json.loads(row["exchanges"] or "[]"):
            out.append({k: row[k] for k in row.keys() if k != "exchanges"})  # noqa: SIM118
    return out


def per_day_and_project(conn: sqlite3.Connection, since: str) -> list[dict[str, Any]]:
    """Analyzer calls per day and project: runs, tokens, dollars, memories added."""
    rows = conn.execute(
        "SELECT substr(started_at, 1, 10) AS day, coalesce(project, '') AS project, "
        "count(*) AS runs, sum(input_tokens + cache_read_tokens + cache_creation_tokens) "
        "AS input_tokens, sum(output_tokens) AS output_tokens, sum(cost_usd) AS cost_usd, "
        "sum(added) AS added, sum(status = 'failed') AS failed FROM analyzer_runs "
        "WHERE started_at >= ? GROUP BY day, project ORDER BY day",
        (since,),
    )
    return [{k: r[k] for k in r.keys()} for r in rows]  # noqa: SIM118 (a Row iterates values)


def insert(session: Session, **columns: Any) -> None:
    """One analyzer call's row, in the caller's transaction."""
    from engram.store.models import AnalyzerRun

    session.add(AnalyzerRun(**columns))
