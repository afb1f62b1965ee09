"""Read-only queries on a plain sqlite3 connection (see `Store.read`): the fast path.

Nothing here imports SQLAlchemy; `engram list` and the proxy's recall stay cheap.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engram.errors import EngramError, NotFound
from engram.store import schema
from engram.store.records import MEMORY_COLUMNS, EventRecord, MemoryRecord

_SELECT = "SELECT " + ", ".join(f"m.{c}" for c in MEMORY_COLUMNS) + " FROM memories m"


class AmbiguousId(EngramError):
    pass


def resolve_id(conn: sqlite3.Connection, text: str) -> str:
    """Turn a full id or a unique prefix (4+ characters after `m-`) into the full id."""
    prefix = schema.normalize_id_prefix(text)
    body = prefix[len(schema.ID_PREFIX) :]
    if not re.fullmatch(r"[0-9a-z]+", body or "-"):
        raise NotFound(f"{text!r} is not a memory id")
    if len(body) < schema.MIN_PREFIX:
        raise EngramError(
            f"id prefix {text!r} is too short: give at least {schema.MIN_PREFIX} characters"
        )
    rows = conn.execute(
        "SELECT id, content FROM memories WHERE id >= ? AND id < ? ORDER BY id LIMIT 11",
        (prefix, prefix + "\U0010ffff"),
    ).fetchall()
    if not rows:
        raise NotFound(f"no memory with id {text}")
    exact = [r for r in rows if r[0] == prefix]
    if len(rows) == 1 or exact:
        return rows[0][0] if not exact else exact[0][0]
    listing = "; ".join(f"{r[0]} {_short(r[1])}" for r in rows[:10])
    raise AmbiguousId(f"id prefix {text} is ambiguous: {listing}")


def _short(text: str, width: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def get_memory(conn: sqlite3.Connection, memory_id: str) -> MemoryRecord:
    row = conn.execute(_SELECT + " WHERE m.id = ?", (memory_id,)).fetchone()
    if row is None:
        raise NotFound(f"no memory with id {memory_id}")
    return MemoryRecord.from_mapping(row)


def list_memories(
    conn: sqlite3.Connection,
    *,
    scope: str | None = None,
    kind: str | None = None,
    include_all: bool = False,
    limit: int | None = None,
) -> list[MemoryRecord]:
    where, params = _filters(scope=scope, kind=kind, include_all=include_all)
    sql = _SELECT + where + " ORDER BY m.created_at DESC, m.seq DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return [MemoryRecord.from_mapping(r) for r in conn.execute(sql, params)]


def _filters(
    *, scope: str | None, kind: str | None, include_all: bool = False
) -> tuple[str, list[Any]]:
    clauses, params = [], []
    if not include_all:
        clauses.append("m.status = 'active'")
    if scope is not None:
        clauses.append("m.scope = ?")
        params.append(scope)
    if kind is not None:
        clauses.append("m.kind = ?")
        params.append(kind)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


_TOKEN = re.compile(r"\w+", re.UNICODE)


def fts_query(text: str) -> str | None:
    """A user's words as an FTS5 query: each word quoted (no syntax errors from `-`, `:`,
    quotes...), OR-ed so partial matches still rank, BM25 putting fuller matches first.
    """
    words = list(dict.fromkeys(w.lower() for w in _TOKEN.findall(text)))
    if not words:
        return None
    return " OR ".join('"' + w.replace('"', '""') + '"' for w in words[:64])


@dataclass(frozen=True, slots=True)
class SearchHit:
    memory: MemoryRecord
    score: float  # BM25, higher is better (SQLite's bm25() negated)


def search(
    conn: sqlite3.Connection,
    query: str,
    *,
    scope: str | None = None,
    scopes: tuple[str, ...] | None = None,
    kind: str | None = None,
    limit: int = 20,
) -> list[SearchHit]:
    """BM25 full-text search over active memories."""
    match = fts_query(query)
    if match is None:
        return []
    where, params = _filters(scope=scope, kind=kind)
    if scopes:
        where += " AND m.scope IN (" + ",".join("?" * len(scopes)) + ")"
        params.extend(scopes)
    sql = (
        "SELECT " + ", ".join(f"m.{c}" for c in MEMORY_COLUMNS) + ", bm25(memories_fts) AS rank"
        " FROM memories_fts JOIN memories m ON m.seq = memories_fts.rowid"
        + where.replace(" WHERE ", " WHERE memories_fts MATCH ? AND ", 1)
        + " ORDER BY rank LIMIT ?"
    )
    rows = conn.execute(sql, [match, *params, limit]).fetchall()
    return [SearchHit(MemoryRecord.from_mapping(r), -float(r["rank"])) for r in rows]


def events(
    conn: sqlite3.Connection,
    *,
    limit: int = 50,
    memory_id: str | None = None,
    actions: Sequence[str] | None = None,
) -> list[EventRecord]:
    """Events newest first; `actions` keeps only those (e.g. all but `inject`)."""
    sql = "SELECT id, at, action, memory_id, actor, detail FROM events"
    where: list[str] = []
    params: list[Any] = []
    if memory_id is not None:
        where.append("memory_id = ?")
        params.append(memory_id)
    if actions is not None:
        where.append(f"action IN ({','.join('?' * len(actions))})")
        params.extend(actions)
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT ?"
    params.append(limit)
    return [EventRecord.from_mapping(r) for r in conn.execute(sql, params)]


def stats(conn: sqlite3.Connection) -> dict[str, Any]:
    def counts(column: str, where: str = "") -> dict[str, int]:
        sql = f"SELECT {column}, count(*) FROM memories {where} GROUP BY {column} ORDER BY 2 DESC"
        return {str(k): n for k, n in conn.execute(sql)}

    total = conn.execute("SELECT count(*) FROM memories").fetchone()[0]
    return {
        "memories": total,
        "by_status": counts("status"),
        "by_kind": counts("kind", "WHERE status = 'active'"),
        "by_scope": counts("scope", "WHERE status = 'active'"),
        "events": conn.execute("SELECT count(*) FROM events").fetchone()[0],
    }


def active_counts(conn: sqlite3.Connection, column: str) -> dict[str, int]:
    """Active memories grouped by `kind` or `scope`, largest group first."""
    if column not in ("kind", "scope"):
        raise ValueError(column)
    return {
        str(k): int(n)
        for k, n in conn.execute(
            f"SELECT {column}, count(*) FROM memories WHERE status = 'active' "
            f"GROUP BY {column} ORDER BY 2 DESC"
        )
    }


def active_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM memories WHERE status = 'active'").fetchone()[0])


def status_of(conn: sqlite3.Connection, memory_id: str) -> tuple[str, str | None] | None:
    """(status, superseded_by) of one memory, or None if there is no such memory."""
    row = conn.execute(
        "SELECT status, superseded_by FROM memories WHERE id = ?", (memory_id,)
    ).fetchone()
    return (row[0], row[1]) if row else None
