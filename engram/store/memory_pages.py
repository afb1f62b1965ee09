"""Reads behind the web UI's memory pages (plain sqlite3 connection from `Store.read()`).

Paging, facets, the supersede chain, injection history and "which memories came from
these exchanges". Kept apart from `reader.py` (the CLI's and recall's reads) because the
UI asks different questions: counts for every filter value, any status, a memory's whole
lineage. Measured on 10k memories (bench/ui.py): each function here is under 15 ms.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from engram.store import schema
from engram.store.reader import fts_query
from engram.store.records import MEMORY_COLUMNS, EventRecord, MemoryRecord

_COLUMNS = ", ".join(f"m.{c}" for c in MEMORY_COLUMNS)
FACETS = ("scope", "kind", "status", "source")


@dataclass(frozen=True, slots=True)
class MemoryFilter:
    """What the memory list is narrowed to; None means any. `status` None means active."""

    scope: str | None = None
    kind: str | None = None
    status: str | None = None
    source: str | None = None

    def where(self) -> tuple[str, list[Any]]:
        clauses = ["m.status = ?"]
        params: list[Any] = [self.status or schema.MemoryStatus.ACTIVE.value]
        for column in ("scope", "kind", "source"):
            value = getattr(self, column)
            if value is not None:
                clauses.append(f"m.{column} = ?")
                params.append(value)
        return " WHERE " + " AND ".join(clauses), params


def page(
    conn: sqlite3.Connection, where: MemoryFilter, *, offset: int = 0, limit: int = 50
) -> tuple[list[MemoryRecord], int]:
    """One page of memories, newest first, and how many match in all."""
    sql_where, params = where.where()
    total = conn.execute(f"SELECT count(*) FROM memories m{sql_where}", params).fetchone()[0]
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM memories m{sql_where} "
        "ORDER BY m.created_at DESC, m.seq DESC LIMIT ? OFFSET ?",
        [*params, limit, offset],
    ).fetchall()
    return [MemoryRecord.from_mapping(r) for r in rows], int(total)


def facets(conn: sqlite3.Connection) -> dict[str, list[tuple[str, int]]]:
    """Every value of scope, kind, status and source with its count (the filter menus):
    one pass over the table, ~25 ms at 10k memories (cache it: see `change_mark`)."""
    out: dict[str, dict[str, int]] = {f: {} for f in FACETS}
    for row in conn.execute(
        "SELECT scope, kind, status, source, count(*) FROM memories GROUP BY 1, 2, 3, 4"
    ):
        for i, facet in enumerate(FACETS):
            out[facet][row[i]] = out[facet].get(row[i], 0) + row[4]
    return {f: sorted(v.items(), key=lambda kv: (-kv[1], kv[0])) for f, v in out.items()}


def change_mark(conn: sqlite3.Connection) -> tuple[int, int]:
    """Changes when any memory changes: the newest event that is not an injection (every
    add, edit, supersede, forget, restore and import logs one) and the row count. Two
    index seeks; lets the UI keep `facets` until the memories change."""
    row = conn.execute(
        "SELECT (SELECT id FROM events WHERE action != 'inject' ORDER BY id DESC LIMIT 1), "
        "(SELECT count(*) FROM memories)"
    ).fetchone()
    return int(row[0] or 0), int(row[1])


def count_status(conn: sqlite3.Connection, status: str) -> int:
    return int(
        conn.execute("SELECT count(*) FROM memories WHERE status = ?", (status,)).fetchone()[0]
    )


def search_words(
    conn: sqlite3.Connection, query: str, where: MemoryFilter, *, limit: int = 50
) -> list[tuple[MemoryRecord, float]]:
    """BM25 over memories of any status (recall's hybrid ranking covers active ones only):
    how the UI searches forgotten, superseded and quarantined memories."""
    match = fts_query(query)
    if match is None:
        return []
    sql_where, params = where.where()
    rows = conn.execute(
        f"SELECT {_COLUMNS}, bm25(memories_fts) AS rank FROM memories_fts "
        "JOIN memories m ON m.seq = memories_fts.rowid"
        + sql_where.replace(" WHERE ", " WHERE memories_fts MATCH ? AND ", 1)
        + " ORDER BY rank LIMIT ?",
        [match, *params, limit],
    ).fetchall()
    return [(MemoryRecord.from_mapping(r), -float(r["rank"])) for r in rows]


def get_many(conn: sqlite3.Connection, ids: list[str]) -> dict[str, MemoryRecord]:
    out: dict[str, MemoryRecord] = {}
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        sql = f"SELECT {_COLUMNS} FROM memories m WHERE m.id IN ({','.join('?' * len(part))})"
        for row in conn.execute(sql, part):
            record = MemoryRecord.from_mapping(row)
            out[record.id] = record
    return out


def lineage(conn: sqlite3.Connection, memory_id: str, *, limit: int = 50) -> list[MemoryRecord]:
    """The supersede chain through a memory, oldest first: the versions it replaced
    (followed back through `superseded_by`) and the ones that replaced it."""
    chain: list[MemoryRecord] = []
    seen: set[str] = set()
    current: str | None = memory_id
    while current and current not in seen and len(chain) < limit:  # back in time
        seen.add(current)
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM memories m WHERE m.superseded_by = ? "
            "ORDER BY m.updated_at DESC LIMIT 1",
            (current,),
        ).fetchone()
        if row is None:
            break
        chain.insert(0, MemoryRecord.from_mapping(row))
        current = chain[0].id
    current = memory_id
    seen = {m.id for m in chain}
    while current and current not in seen and len(chain) < 2 * limit:  # forward
        seen.add(current)
        row = conn.execute(f"SELECT {_COLUMNS} FROM memories m WHERE m.id = ?", (current,))
        found = row.fetchone()
        if found is None:
            break
        record = MemoryRecord.from_mapping(found)
        chain.append(record)
        current = record.superseded_by
    return chain


def history(conn: sqlite3.Connection, memory_id: str, *, limit: int = 200) -> list[EventRecord]:
    """A memory's changes (everything but injections), oldest first."""
    rows = conn.execute(
        "SELECT id, at, action, memory_id, actor, detail FROM events "
        "WHERE memory_id = ? AND action != 'inject' ORDER BY id DESC LIMIT ?",
        (memory_id, limit),
    ).fetchall()
    return [EventRecord.from_mapping(r) for r in reversed(rows)]


@dataclass(frozen=True, slots=True)
class InjectSummary:
    total: int
    per_day: list[tuple[str, int]]  # (YYYY-MM-DD, injections), oldest first
    recent: list[EventRecord]  # newest first


def injections(
    conn: sqlite3.Connection, memory_id: str, *, since: str, recent: int = 20
) -> InjectSummary:
    """How often recall gave this memory to an agent: in all, per day since `since`
    (an ISO date), and the latest few with their conversation, score and query."""
    total = conn.execute(
        "SELECT count(*) FROM events WHERE memory_id = ? AND action = 'inject'", (memory_id,)
    ).fetchone()[0]
    per_day = [
        (str(day), int(n))
        for day, n in conn.execute(
            "SELECT substr(at, 1, 10) AS day, count(*) FROM events "
            "WHERE memory_id = ? AND action = 'inject' AND at >= ? GROUP BY day ORDER BY day",
            (memory_id, since),
        )
    ]
    rows = conn.execute(
        "SELECT id, at, action, memory_id, actor, detail FROM events "
        "WHERE memory_id = ? AND action = 'inject' ORDER BY id DESC LIMIT ?",
        (memory_id, recent),
    ).fetchall()
    return InjectSummary(int(total), per_day, [EventRecord.from_mapping(r) for r in rows])


def exchange_ref(exchange_id: int) -> str:
    """How a memory's provenance names the exchange it was distilled from."""
    return f"x-{exchange_id}"


def derived_from(
    conn: sqlite3.Connection, exchange_ids: list[int]
) -> dict[int, list[MemoryRecord]]:
    """The memories whose provenance names each exchange: one pass over the memories
    that have any provenance (~8 ms at 10k)."""
    if not exchange_ids:
        return {}
    refs = {exchange_ref(i): i for i in exchange_ids}
    out: dict[int, list[MemoryRecord]] = {}
    marks = ",".join("?" * len(refs))
    sql = (
        f"SELECT DISTINCT {_COLUMNS}, p.value AS ref FROM memories m, json_each(m.provenance) p "
        f"WHERE m.provenance != '[]' AND p.value IN ({marks}) ORDER BY m.created_at"
    )
    for row in conn.execute(sql, list(refs)):
        out.setdefault(refs[row["ref"]], []).append(MemoryRecord.from_mapping(row))
    return out
