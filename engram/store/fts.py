"""The full-text index `memories_fts` (FTS5, porter stemming): recall's BM25 reads.

Read functions on a plain read connection; the index itself is kept in step with
`memories` by the triggers of migration 0001, so nothing here writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

ACTIVE = "m.status = 'active'"
_COLUMNS = "m.id, m.content, m.kind, m.scope, m.content_hash"

# (id, content, kind, scope, content_hash, rank): rank is FTS5's bm25(), lower is better
BM25Row = tuple[str, str, str, str, str, float]


def memory_rows_bound(conn: sqlite3.Connection) -> int:
    """An upper bound of the memories ever stored (the largest rowid): one b-tree seek."""
    return int(conn.execute("SELECT coalesce(max(seq), 0) FROM memories").fetchone()[0])


def match_count(conn: sqlite3.Connection, match: str) -> int:
    """How many memories (any status) an FTS5 MATCH expression hits: a doclist walk."""
    return int(
        conn.execute(
            "SELECT count(*) FROM memories_fts WHERE memories_fts MATCH ?", (match,)
        ).fetchone()[0]
    )


def bm25_rows(
    conn: sqlite3.Connection,
    match: str,
    scopes: Sequence[str],
    limit: int,
    *,
    inner: int | None = None,
) -> list[BM25Row]:
    """Best BM25 matches among active memories of `scopes`, best first.

    With `inner`, FTS5 ranks on its own first and only its best `inner` rows are joined
    with `memories` (cheaper in a large store; may return fewer than `limit` when most
    of them belong to other scopes, and the caller then asks again without it).
    """
    marks = ",".join("?" * len(scopes))
    where = f"{ACTIVE} AND m.scope IN ({marks})"
    if inner is not None:
        sql = (
            f"SELECT {_COLUMNS}, f.rank FROM (SELECT rowid, rank FROM memories_fts"
            " WHERE memories_fts MATCH ? ORDER BY rank LIMIT ?) f"
            f" JOIN memories m ON m.seq = f.rowid WHERE {where} ORDER BY f.rank LIMIT ?"
        )
        return conn.execute(sql, [match, inner, *scopes, limit]).fetchall()
    sql = (
        f"SELECT {_COLUMNS}, bm25(memories_fts) AS rank FROM memories_fts"
        f" JOIN memories m ON m.seq = memories_fts.rowid"
        f" WHERE memories_fts MATCH ? AND {where} ORDER BY rank LIMIT ?"
    )
    return conn.execute(sql, [match, *scopes, limit]).fetchall()
