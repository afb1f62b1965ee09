"""The `transcript_files` table: how far each agent transcript is in the journal.

A reader saves a file's state in the transaction that journals the pieces it read, so
the offset and the rows it covers commit together (see 0007_transcripts.py). Reads run
on the plain connection (`Store.read()`): the follower loads every file's state once at
start, `engram status` counts them.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from engram.store import schema

if TYPE_CHECKING:  # the ORM costs ~230 ms to import: only writers pay for it
    from sqlalchemy.orm import Session

_COLUMNS = (
    "path",
    "agent",
    "conversation",
    "project",
    "offset",
    "size",
    "mtime_ns",
    "inode",
    "head",
    "pieces",
    "turns",
    "skipped",
    "bad_lines",
)


@dataclass
class FileState:
    path: str
    agent: str
    conversation: str | None = None
    project: str | None = None
    offset: int = 0  # every complete piece before this byte is journaled
    size: int = 0
    mtime_ns: int = 0
    inode: int = 0
    head: str = ""  # hash of the first bytes: a rewritten file reads from the start
    pieces: int = 0
    turns: int = 0
    skipped: str | None = None
    bad_lines: int = 0


def load(conn: sqlite3.Connection, paths: list[str] | None = None) -> dict[str, FileState]:
    """Every known file's state (or those of `paths`), by path."""
    sql = f"SELECT {', '.join(_COLUMNS)} FROM transcript_files"
    if paths is None:
        rows = conn.execute(sql).fetchall()
    else:
        rows = []
        for start in range(0, len(paths), 500):
            part = paths[start : start + 500]
            marks = ",".join("?" * len(part))
            rows += conn.execute(f"{sql} WHERE path IN ({marks})", part).fetchall()
    return {row[0]: FileState(*row) for row in rows}


_UPSERT: Any = None  # compiled once: INSERT ... ON CONFLICT(path) DO UPDATE


def save(session: Session, state: FileState) -> None:
    """Insert or update a file's state (inside the write that journaled its pieces).

    One upsert statement, not an ORM load and update: a back-fill saves a state per file
    (measured: the load was ~0.8 ms of a file's ~6 ms)."""
    global _UPSERT
    if _UPSERT is None:
        from sqlalchemy.dialects.sqlite import insert

        from engram.store.models import TranscriptFile

        table = TranscriptFile.__table__
        stmt = insert(table)  # type: ignore[arg-type]
        kept = {c.name for c in table.c} - {"path", "first_at"}
        _UPSERT = stmt.on_conflict_do_update(
            index_elements=["path"], set_={name: stmt.excluded[name] for name in kept}
        )
    now = schema.now_iso()
    session.connection().execute(_UPSERT, {**asdict(state), "first_at": now, "updated_at": now})


def totals(conn: sqlite3.Connection) -> list[tuple[str, int, int, int]]:
    """(agent, files, pieces, turns) for every agent with a known file."""
    rows = conn.execute(
        "SELECT agent, count(*), coalesce(sum(pieces), 0), coalesce(sum(turns), 0) "
        "FROM transcript_files GROUP BY agent ORDER BY agent"
    ).fetchall()
    return [(str(a), int(f), int(p), int(t)) for a, f, p, t in rows]
