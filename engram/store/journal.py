"""The journal's tables (`exchanges`, `conversations`): rows in, rows out.

What goes into a row (parsing, the conversation delta, redaction) is decided by
`engram.journaling.record`, the one door every source uses; this module only stores and
reads. Only the turns never journaled before in their conversation are stored (`turns`),
so storage and analysis grow with the conversation, not with its square.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engram.errors import NotFound
from engram.store import schema
from engram.store.db import raw_connection

if TYPE_CHECKING:
    # The ORM is imported inside the write functions only: `engram status` reads this
    # module's counts and must not pay SQLAlchemy's ~230 ms import.
    from sqlalchemy.orm import Session

    from engram.store.models import ExchangeRow

STATUSES = tuple(schema.ExchangeStatus)


@dataclass(frozen=True, slots=True)
class Inserted:
    """An exchange row as the journaling door reports it (new or found)."""

    id: int
    kind: str
    status: str
    new_turns: int


def find(session: Session, source_key: str, fp: str) -> Inserted | None:
    """The row for a flow journaled before, by its source key or its content.

    A plain statement on the transaction's connection (db.raw_connection): every
    proxied request runs it, and an ORM query with its identity map cost ~0.8 ms."""
    row = (
        raw_connection(session)
        .execute(
            "SELECT id, kind, status, new_turns FROM exchanges"
            " WHERE source_key = ? OR fingerprint = ? LIMIT 1",
            (source_key, fp),
        )
        .fetchone()
    )
    return Inserted(int(row[0]), row[1], row[2], int(row[3])) if row else None


_INSERT: Any = None  # one statement for every row (parameters bound per call): compiled once


def insert(session: Session, **columns: Any) -> Inserted:
    """Add one exchange row (the caller has checked `find`).

    A Core INSERT ... RETURNING rather than an ORM object: the unit of work's flush per
    row was most of the cost of a transcript back-fill (measured: 2.8 of 8.5 s for
    10,000 lines), and nothing reads the row back as an object.
    """
    global _INSERT
    if _INSERT is None:
        from sqlalchemy import insert as sa_insert

        from engram.store.models import ExchangeRow

        table = ExchangeRow.__table__
        _INSERT = sa_insert(table).returning(table.c.id)  # type: ignore[arg-type]
    params = {"captured_at": schema.now_iso(), **columns}
    row_id = session.connection().execute(_INSERT, params).scalar_one()
    return Inserted(int(row_id), columns["kind"], columns["status"], columns["new_turns"])


def known_keys(session: Session, keys: list[str], fingerprints: list[str]) -> set[str]:
    """Which of `keys` (or their content `fingerprints`, pairwise) are journaled already:
    one lookup per index for a batch instead of one `find` per row. (One query with
    `source_key IN ... OR fingerprint IN ...` scans the whole table.)"""
    from sqlalchemy import select

    from engram.store.models import ExchangeRow

    found: set[str] = set()
    by_fp = dict(zip(fingerprints, keys, strict=True))
    for start in range(0, len(keys), 400):
        part, fps = keys[start : start + 400], fingerprints[start : start + 400]
        found.update(
            session.scalars(select(ExchangeRow.source_key).where(ExchangeRow.source_key.in_(part)))
        )
        for fp in session.scalars(
            select(ExchangeRow.fingerprint).where(ExchangeRow.fingerprint.in_(fps))
        ):
            found.add(by_fp[fp])
    return found


@dataclass(slots=True)
class ConversationSeen:
    """A conversation's row as journaling reads and advances it."""

    key: str
    project: str | None
    seen: str  # JSON: the fingerprints (and counts) of every turn journaled so far
    exchanges: int


def conversation_seen(session: Session, key: str, project: str | None) -> ConversationSeen:
    """The conversation's row (created if new), holding the fingerprints of every turn
    journaled so far; read and advanced inside the capture's write transaction, so two
    doors capturing the same conversation at once cannot both store a turn. Plain
    statements (db.raw_connection): every proxied request runs them."""
    conn = raw_connection(session)
    row = conn.execute(
        "SELECT project, seen, exchanges FROM conversations WHERE key = ?", (key,)
    ).fetchone()
    if row is not None:
        return ConversationSeen(key, row[0], row[1], int(row[2]))
    now = schema.now_iso()
    conn.execute(
        "INSERT INTO conversations (key, project, seen, exchanges, first_at, last_at)"
        " VALUES (?, ?, '{}', 0, ?, ?)",
        (key, project, now, now),
    )
    return ConversationSeen(key, project, "{}", 0)


def note_seen(session: Session, conv: ConversationSeen, seen: dict[str, Any]) -> None:
    """Count turns as seen without journaling them (a paused period)."""
    conv.seen = json.dumps(seen, separators=(",", ":"))
    raw_connection(session).execute(
        "UPDATE conversations SET seen = ? WHERE key = ?", (conv.seen, conv.key)
    )


def advance_conversation(
    session: Session, conv: ConversationSeen, seen: dict[str, Any], project: str | None
) -> None:
    conv.seen = json.dumps(seen, separators=(",", ":"))
    conv.exchanges += 1
    conv.project = conv.project or project
    raw_connection(session).execute(
        "UPDATE conversations SET seen = ?, exchanges = ?, last_at = ?, project = ? WHERE key = ?",
        (conv.seen, conv.exchanges, schema.now_iso(), conv.project, conv.key),
    )


def existing_keys(session: Session, keys: list[str]) -> set[str]:
    from sqlalchemy import select

    from engram.store.models import ExchangeRow

    found: set[str] = set()
    for start in range(0, len(keys), 500):
        part = keys[start : start + 500]
        found.update(
            session.scalars(select(ExchangeRow.source_key).where(ExchangeRow.source_key.in_(part)))
        )
    return found


# -- reading -------------------------------------------------------------------------

JOURNAL_FIELDS = (
    "id",
    "source",
    "source_key",
    "kind",
    "format",
    "model",
    "conversation",
    "project",
    "new_turns",
    "status",
    "error",
    "captured_at",
    "status_code",
    "endpoint",
    "truncated",
    "attempts",
    "input_tokens",
    "output_tokens",
    "recall",  # JSON: the recall decision (engram/recall/audit.py; migration 0006)
)


_BOOL_FIELDS = ("truncated",)


def _as_dict(row: sqlite3.Row | tuple[Any, ...], with_turns: bool) -> dict[str, Any]:
    data = dict(zip(JOURNAL_FIELDS, row, strict=False))
    for f in _BOOL_FIELDS:
        data[f] = bool(data[f])
    data["recall"] = json.loads(data["recall"]) if data.get("recall") else None
    if with_turns:
        data["turns"] = json.loads(row[len(JOURNAL_FIELDS)])
    return data


def list_exchanges(
    conn: sqlite3.Connection, *, failed: bool = False, status: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Journal rows as `engram journal --json` shows them, newest first."""
    where = ""
    params_: tuple[Any, ...] = ()
    if failed:
        where = "WHERE status = 'failed'"
    elif status:
        where, params_ = "WHERE status = ?", (status,)
    rows = conn.execute(
        f"SELECT {', '.join(JOURNAL_FIELDS)} FROM exchanges {where} ORDER BY id DESC LIMIT ?",
        (*params_, limit),
    )
    return [_as_dict(r, False) for r in rows]


def get_exchange(conn: sqlite3.Connection, exchange_id: int) -> dict[str, Any]:
    """One journal row with the turns it added."""
    row = conn.execute(
        f"SELECT {', '.join(JOURNAL_FIELDS)}, turns FROM exchanges WHERE id = ?", (exchange_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"no exchange with id {exchange_id}")
    return _as_dict(row, True)


def pending_summary(conn: sqlite3.Connection) -> tuple[int, str | None]:
    """How many exchanges await analysis and when the oldest was captured: what decides
    whether an analyzer run is due, read without taking the write lock."""
    n, oldest = conn.execute(
        "SELECT count(*), min(captured_at) FROM exchanges WHERE status = 'pending'"
    ).fetchone()
    return int(n), oldest


def pending(session: Session, limit: int | None = None) -> list[ExchangeRow]:
    from sqlalchemy import select

    from engram.store.models import ExchangeRow

    query = select(ExchangeRow).where(ExchangeRow.status == "pending").order_by(ExchangeRow.id)
    return list(session.scalars(query.limit(limit) if limit else query))


def mark(session: Session, ids: Iterable[int], status: str, error: str | None = None) -> None:
    values: dict[str, Any] = {"status": status, "error": error}
    if status == "analyzed":
        values["analyzed_at"] = schema.now_iso()
    from sqlalchemy import update

    from engram.store.models import ExchangeRow

    session.execute(update(ExchangeRow).where(ExchangeRow.id.in_(list(ids))).values(**values))


def fail_analysis(session: Session, ids: Iterable[int], error: str, max_attempts: int) -> int:
    """A batch's analysis failed: one more attempt counted on each of its exchanges, and
    those at `max_attempts` parked as failed (`engram analyze --retry`). Returns how many
    were parked."""
    from sqlalchemy import update

    from engram.store.db import affected
    from engram.store.models import ExchangeRow

    ids = list(ids)
    session.execute(
        update(ExchangeRow)
        .where(ExchangeRow.id.in_(ids))
        .values(attempts=ExchangeRow.attempts + 1, analysis_error=error)
    )
    parked = session.execute(
        update(ExchangeRow)
        .where(ExchangeRow.id.in_(ids), ExchangeRow.attempts >= max_attempts)
        .values(status=schema.ExchangeStatus.FAILED)
    )
    return affected(parked) or 0


def retry_failed(session: Session) -> int:
    """Parked analysis failures go back to pending with a fresh attempt count."""
    from sqlalchemy import update

    from engram.store.db import affected
    from engram.store.models import ExchangeRow

    done = session.execute(
        update(ExchangeRow)
        .where(
            ExchangeRow.status == schema.ExchangeStatus.FAILED,
            ExchangeRow.analysis_error.is_not(None),
        )
        .values(status=schema.ExchangeStatus.PENDING, attempts=0)
    )
    return affected(done) or 0


# -- counts on the plain read connection (no ORM, no write lock) -----------------------


def status_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Exchanges per status (pending, analyzed, skipped, failed)."""
    return {
        str(k): int(n)
        for k, n in conn.execute("SELECT status, count(*) FROM exchanges GROUP BY status")
    }


def by_source(conn: sqlite3.Connection, since_iso: str | None = None) -> dict[str, int]:
    """Exchanges per capture source (mitmweb, proxy, addon, file, ...), optionally since
    a time."""
    where, params = ("WHERE captured_at >= ?", (since_iso,)) if since_iso else ("", ())
    return {
        str(k): int(n)
        for k, n in conn.execute(
            f"SELECT source, count(*) FROM exchanges {where} GROUP BY source", params
        )
    }


def pending_totals(conn: sqlite3.Connection) -> tuple[int, int]:
    """(exchanges, new turns) waiting for the analyzer."""
    n, turns = conn.execute(
        "SELECT count(*), coalesce(sum(new_turns), 0) FROM exchanges WHERE status = 'pending'"
    ).fetchone()
    return int(n), int(turns)


def captured_since(conn: sqlite3.Connection, since_iso: str) -> int:
    return int(
        conn.execute(
            "SELECT count(*) FROM exchanges WHERE captured_at >= ?", (since_iso,)
        ).fetchone()[0]
    )


def failed_batches(conn: sqlite3.Connection) -> int:
    """Exchanges the analyzer parked after max attempts (`engram analyze --retry`)."""
    return int(
        conn.execute(
            "SELECT count(*) FROM exchanges WHERE status = 'failed' AND analysis_error IS NOT NULL"
        ).fetchone()[0]
    )


def recall_outcomes_since(conn: sqlite3.Connection, since_iso: str) -> dict[str, int]:
    """{recall outcome: exchanges} captured since `since_iso` (the captured_at index):
    today's injection rate in `engram status`."""
    rows = conn.execute(
        "SELECT json_extract(recall, '$.outcome'), count(*) FROM exchanges "
        "WHERE captured_at >= ? AND recall IS NOT NULL GROUP BY 1",
        (since_iso,),
    )
    return {str(outcome): int(n) for outcome, n in rows}
