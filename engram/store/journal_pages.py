"""Reads behind the web UI's conversation and request pages (plain sqlite3 connection).

The journal grows by every agent request (100k rows is a few weeks of heavy use), so
every query here walks an index: the primary key newest-first, `(conversation, id)`,
or `(status, id)`; turns (the big column) are read only for the rows on the page.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from engram.errors import NotFound

# The row without its turns: what a list shows.
SUMMARY_COLUMNS = (
    "id",
    "source",
    "kind",
    "format",
    "provider",
    "host",
    "endpoint",
    "model",
    "conversation",
    "project",
    "status_code",
    "stream",
    "truncated",
    "started_at",
    "ended_at",
    "captured_at",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_creation_tokens",
    "request_bytes",
    "response_bytes",
    "new_turns",
    "status",
    "error",
    "attempts",
    "analyzed_at",
    "analysis_error",
)
_SUMMARY = ", ".join(SUMMARY_COLUMNS)


@dataclass(frozen=True, slots=True)
class ExchangeFilter:
    project: str | None = None
    source: str | None = None
    status: str | None = None
    conversation: str | None = None

    def where(self) -> tuple[str, list[Any]]:
        clauses, params = [], []
        for column in ("project", "source", "status", "conversation"):
            value = getattr(self, column)
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


@dataclass(slots=True)
class ExchangeView:
    """One journaled exchange as the UI shows it."""

    row: dict[str, Any]
    turns: list[dict[str, Any]] = field(default_factory=list)

    @property
    def id(self) -> int:
        return int(self.row["id"])


AUDIT = "recall"  # the recall decision per exchange (engram/recall/audit.py), when kept


def has_audit(conn: sqlite3.Connection) -> bool:
    """Whether this database keeps recall decisions (the column arrived with a later
    migration than the journal; one PRAGMA, ~0.05 ms)."""
    return any(r[1] == AUDIT for r in conn.execute("PRAGMA table_info(exchanges)"))


def _summary(conn: sqlite3.Connection) -> str:
    return _SUMMARY + (f", {AUDIT}" if has_audit(conn) else "")


def _view(row: sqlite3.Row, with_turns: bool) -> ExchangeView:
    data = {k: row[k] for k in row.keys() if k != "turns"}  # noqa: SIM118 (a Row iterates values)
    turns = json.loads(row["turns"] or "[]") if with_turns else []
    return ExchangeView(data, turns)


def page(
    conn: sqlite3.Connection,
    where: ExchangeFilter,
    *,
    before: int | None = None,
    limit: int = 50,
    with_turns: bool = False,
    oldest_first: bool = False,
) -> list[ExchangeView]:
    """A page of exchanges by id (newest first, or oldest first in a conversation),
    keyset-paged: `before`/after an id, never OFFSET over 100k rows."""
    sql_where, params = where.where()
    if before is not None:
        op = ">" if oldest_first else "<"
        sql_where += (" AND " if sql_where else " WHERE ") + f"id {op} ?"
        params.append(before)
    columns = _summary(conn) + (", turns" if with_turns else "")
    order = "ASC" if oldest_first else "DESC"
    rows = conn.execute(
        f"SELECT {columns} FROM exchanges{sql_where} ORDER BY id {order} LIMIT ?",
        [*params, limit],
    ).fetchall()
    return [_view(r, with_turns) for r in rows]


def count(conn: sqlite3.Connection, where: ExchangeFilter) -> int:
    sql_where, params = where.where()
    return int(conn.execute(f"SELECT count(*) FROM exchanges{sql_where}", params).fetchone()[0])


def get(conn: sqlite3.Connection, exchange_id: int) -> ExchangeView:
    row = conn.execute(
        f"SELECT {_summary(conn)}, turns FROM exchanges WHERE id = ?", (exchange_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"no exchange with id {exchange_id}")
    return _view(row, True)


def get_many(conn: sqlite3.Connection, ids: list[int]) -> dict[int, dict[str, Any]]:
    """Summaries of the exchanges a memory's provenance names."""
    out: dict[int, dict[str, Any]] = {}
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        sql = f"SELECT {_SUMMARY} FROM exchanges WHERE id IN ({','.join('?' * len(part))})"
        for row in conn.execute(sql, part):
            out[int(row["id"])] = {k: row[k] for k in SUMMARY_COLUMNS}
    return out


def projects_seen(conn: sqlite3.Connection) -> list[str]:
    """Every project with a conversation (the conversations table is small)."""
    sql = "SELECT DISTINCT project FROM conversations WHERE project IS NOT NULL ORDER BY 1"
    return [str(r[0]) for r in conn.execute(sql)]


# -- conversations -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConversationRow:
    key: str
    project: str | None
    exchanges: int
    first_at: str
    last_at: str


def conversations(
    conn: sqlite3.Connection, *, project: str | None = None, offset: int = 0, limit: int = 50
) -> tuple[list[ConversationRow], int]:
    """Conversations, most recently active first, and how many in all."""
    where, params = ("WHERE project = ?", [project]) if project is not None else ("", [])
    total = conn.execute(f"SELECT count(*) FROM conversations {where}", params).fetchone()[0]
    rows = conn.execute(
        f"SELECT key, project, exchanges, first_at, last_at FROM conversations {where} "
        "ORDER BY last_at DESC LIMIT ? OFFSET ?",
        [*params, limit, offset],
    ).fetchall()
    return [ConversationRow(*r) for r in rows], int(total)


def conversation(conn: sqlite3.Connection, key: str) -> ConversationRow:
    row = conn.execute(
        "SELECT key, project, exchanges, first_at, last_at FROM conversations WHERE key = ?",
        (key,),
    ).fetchone()
    if row is None:
        raise NotFound(f"no conversation {key!r}")
    return ConversationRow(*row)


def projects(conn: sqlite3.Connection) -> list[tuple[str, int, str]]:
    """Each project with its conversations and the last time one was active."""
    return [
        (str(p), int(n), str(last))
        for p, n, last in conn.execute(
            "SELECT coalesce(project, ''), count(*), max(last_at) FROM conversations "
            "GROUP BY 1 ORDER BY 3 DESC"
        )
    ]
