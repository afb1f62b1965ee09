"""`memory_vectors`: each memory's embedding, and what recall's index reads to stay
in step with `memories`.

A vector row carries the embedder's name (the vector space: `model`) and the content
hash it was computed from; recall reuses a stored vector only when both match, so an
edited memory or a changed model is re-embedded, and nothing of two models is mixed.
Vectors are float32 little-endian, L2-normalized.

Changes are found through `events`: every memory change writes an event in the same
transaction (store.memories), so `max(events.id)` is a change counter costing one seek.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import insert
from sqlalchemy.orm import Session

from engram.store import schema
from engram.store.models import MemoryVector

_CHUNK = 500


@dataclass(frozen=True, slots=True)
class ActiveRow:
    id: str
    scope: str
    content: str
    content_hash: str


@dataclass(frozen=True, slots=True)
class Candidate:
    """What recall needs of a memory it may inject."""

    content: str
    kind: str
    scope: str
    content_hash: str


def _chunks(ids: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(ids), _CHUNK):
        yield list(ids[start : start + _CHUNK])


# -- change tracking -----------------------------------------------------------------


def change_counter(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT max(id) FROM events").fetchone()[0] or 0)


def memory_changes_after(conn: sqlite3.Connection, after: int) -> bool:
    """Whether any event after `after` changed a memory (recall's own `inject` events
    change none)."""
    row = conn.execute(
        "SELECT 1 FROM events WHERE id > ? AND action != ? LIMIT 1",
        (after, schema.Action.INJECT.value),
    ).fetchone()
    return row is not None


def changed_memory_ids(conn: sqlite3.Connection, after: int, upto: int) -> list[str]:
    """Memories named by change events in (after, upto], each once, in order."""
    rows = conn.execute(
        "SELECT memory_id FROM events WHERE id > ? AND id <= ? AND action != ? "
        "AND memory_id IS NOT NULL",
        (after, upto, schema.Action.INJECT.value),
    )
    return list(dict.fromkeys(r[0] for r in rows))


# -- memories as recall sees them -------------------------------------------------------


def active_scope_sizes(conn: sqlite3.Connection) -> dict[str, int]:
    return dict(
        conn.execute("SELECT scope, count(*) FROM memories WHERE status = 'active' GROUP BY scope")
    )


def active_scopes(conn: sqlite3.Connection) -> list[str]:
    return [
        r[0] for r in conn.execute("SELECT DISTINCT scope FROM memories WHERE status = 'active'")
    ]


def active_rows(conn: sqlite3.Connection, ids: Sequence[str]) -> list[ActiveRow]:
    """The active memories among `ids` (others are gone, superseded or forgotten)."""
    out: list[ActiveRow] = []
    for chunk in _chunks(ids):
        out.extend(
            ActiveRow(*r)
            for r in conn.execute(
                "SELECT id, scope, content, content_hash FROM memories WHERE status = "
                f"'active' AND id IN ({','.join('?' * len(chunk))})",
                chunk,
            )
        )
    return out


def candidates(conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, Candidate]:
    """{id: Candidate} for the active memories among `ids`: a primary-key lookup that
    also guarantees a memory forgotten a moment ago is never injected."""
    out: dict[str, Candidate] = {}
    for chunk in _chunks(ids):
        for mid, content, kind, scope, chash in conn.execute(
            "SELECT id, content, kind, scope, content_hash FROM memories "
            f"WHERE status = 'active' AND id IN ({','.join('?' * len(chunk))})",
            chunk,
        ):
            out[mid] = Candidate(content, kind, scope, chash)
    return out


# -- vectors -------------------------------------------------------------------------------


def stored_dim(conn: sqlite3.Connection, model: str) -> int:
    row = conn.execute(
        "SELECT coalesce(max(dim), 0) FROM memory_vectors WHERE model = ?", (model,)
    ).fetchone()
    return int(row[0])


def active_with_vectors(
    conn: sqlite3.Connection, model: str
) -> Iterator[tuple[str, str, str, str | None, bytes | None]]:
    """Every active memory as (id, scope, content_hash, vector's content_hash, vector)
    for `model` (None, None when it has no vector of that model), streamed."""
    cursor = conn.execute(
        "SELECT m.id, m.scope, m.content_hash, v.content_hash, v.vector"
        " FROM memories m LEFT JOIN memory_vectors v"
        " ON v.memory_id = m.id AND v.model = ? WHERE m.status = 'active'",
        (model,),
    )
    while chunk := cursor.fetchmany(4096):
        yield from chunk


def coverage(conn: sqlite3.Connection, model: str) -> tuple[int, int]:
    """(active memories, those with a current vector of `model`)."""
    total, done = conn.execute(
        "SELECT count(*), count(v.memory_id) FROM memories m LEFT JOIN memory_vectors v"
        " ON v.memory_id = m.id AND v.model = ? AND v.content_hash = m.content_hash"
        " WHERE m.status = 'active'",
        (model,),
    ).fetchone()
    return int(total), int(done)


def stale_ids(conn: sqlite3.Connection, model: str) -> list[str]:
    """Active memories without a current vector of `model`, oldest first."""
    return [
        r[0]
        for r in conn.execute(
            "SELECT m.id FROM memories m LEFT JOIN memory_vectors v"
            " ON v.memory_id = m.id AND v.model = ? AND v.content_hash = m.content_hash"
            " WHERE m.status = 'active' AND v.memory_id IS NULL ORDER BY m.seq",
            (model,),
        )
    ]


def stored_vectors(
    conn: sqlite3.Connection, model: str, ids: Sequence[str]
) -> dict[str, tuple[str, bytes]]:
    """{memory id: (content hash, vector bytes)} stored for `model`."""
    out: dict[str, tuple[str, bytes]] = {}
    for chunk in _chunks(ids):
        for mid, chash, blob in conn.execute(
            "SELECT memory_id, content_hash, vector FROM memory_vectors WHERE model = ? "
            f"AND memory_id IN ({','.join('?' * len(chunk))})",
            [model, *chunk],
        ):
            out[mid] = (chash, blob)
    return out


def save(session: Session, model: str, rows: Sequence[tuple[str, str, bytes, int]]) -> None:
    """Store vectors: rows of (memory id, content hash, float32 LE bytes, dim); a memory
    keeps one vector (the current model's)."""
    now = schema.now_iso()
    values = [
        {
            "memory_id": mid,
            "model": model,
            "dim": dim,
            "vector": blob,
            "content_hash": chash,
            "updated_at": now,
        }
        for mid, chash, blob, dim in rows
    ]
    for start in range(0, len(values), 1000):
        session.execute(
            insert(MemoryVector).prefix_with("OR REPLACE"), values[start : start + 1000]
        )
