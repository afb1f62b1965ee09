"""The mirror's tables: the outbox of memory changes and what MuninnDB holds per memory.

`enqueue` is called by engram/store/memories.py inside the transaction that changes the
memory, so a change and its outbox row commit (or roll back) together.

Policy: changes are queued whether or not the mirror is enabled. A row is ~100 bytes
(no content: the sync job reads the memory's current state), the outbox grows no faster
than the event log, done rows are pruned after a week, and enabling the mirror later
then mirrors everything that happened before, with no separate backfill step.

Everything else here is the sync job's bookkeeping: reading a page of pending rows with
the state needed to reconcile each memory (in one snapshot), committing the outcomes,
the durable backoff and the numbers `engram mirror status` shows. Reads use the plain
sqlite3 connection (`Store.read`), writes one ORM session (`Store.write`).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engram.store import schema, state
from engram.store.db import affected

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from engram.store.db import Store

OPS = ("add", "edit", "supersede", "forget", "restore", "resync")
PRUNE_AFTER_DAYS = 7
K_INSTALL, K_SUCCESS, K_ERROR = "mirror.install_id", "mirror.last_success", "mirror.last_error"
K_RETRY, K_FAILURES = "mirror.retry_at", "mirror.failures"


def enqueue(session: Session, memory_id: str, op: str, **detail: Any) -> None:
    """Queue one memory change in the caller's transaction."""
    from engram.store.models import MirrorOp

    session.add(
        MirrorOp(
            memory_id=memory_id,
            op=op,
            status="pending",
            attempts=0,
            payload=json.dumps(detail, sort_keys=True) if detail else "{}",
            created_at=schema.now_iso(),
        )
    )


@dataclass
class Mirror:
    """What MuninnDB holds for one memory (a `mirror_ids` row; state 'none' if absent)."""

    vault: str | None = None
    muninn_id: str | None = None
    content_hash: str | None = None
    state: str = schema.MirrorState.NONE
    forgotten_at: str | None = None
    intent: dict[str, Any] | None = None

    @property
    def active(self) -> bool:
        return self.state == schema.MirrorState.ACTIVE and self.muninn_id is not None

    @property
    def live(self) -> bool:
        """MuninnDB may hold an active copy: it is active, or in doubt."""
        return self.muninn_id is not None and self.state in (
            schema.MirrorState.ACTIVE,
            schema.MirrorState.IN_DOUBT,
        )


@dataclass
class Target:
    """One memory to reconcile: its pending rows, local state and mirror state."""

    memory_id: str
    upto: int  # the newest pending row this reconciliation settles
    backoff_until: str | None
    local: dict[str, Any] | None  # the memories row; None if it does not exist
    mirror: Mirror = field(default_factory=Mirror)


@dataclass
class Outcome:
    """What happened to one Target, to be committed."""

    target: Target
    status: str  # done | failed | retry | wait (unreachable: next_attempt_at only)
    error: str | None = None
    mirror: Mirror | None = None  # the new mirror state (None: unchanged)


_MEMORY_COLS = (
    "id",
    "content",
    "kind",
    "scope",
    "source",
    "status",
    "superseded_by",
    "created_at",
    "content_hash",
)


def _in(ids: list[str]) -> str:
    return ",".join("?" * len(ids))


def load_page(
    conn: sqlite3.Connection, after: int, limit: int, now: str, force: bool
) -> tuple[list[Target], int]:
    """The memories behind the next `limit` due pending rows after row `after`, in row
    order, with everything needed to reconcile them read in one snapshot; and the last
    row id seen (the cursor). The outbox is read first so that the memory state read
    afterwards is at least as new as every row it settles."""
    conn.execute("BEGIN")
    try:
        rows = conn.execute(
            "SELECT id, memory_id FROM mirror_outbox WHERE status = 'pending' AND id > ? "
            "AND (? OR next_attempt_at IS NULL OR next_attempt_at <= ?) ORDER BY id LIMIT ?",
            (after, int(force), now, limit),
        ).fetchall()
        if not rows:
            return [], after
        ids = list(dict.fromkeys(r[1] for r in rows))
        pending = {
            r[0]: (r[1], r[2])
            for r in conn.execute(
                f"SELECT memory_id, max(id), max(next_attempt_at) FROM mirror_outbox "
                f"WHERE status = 'pending' AND memory_id IN ({_in(ids)}) GROUP BY memory_id",
                ids,
            )
        }
        local = {
            r[0]: dict(zip(_MEMORY_COLS, r, strict=True))
            for r in conn.execute(
                f"SELECT {', '.join(_MEMORY_COLS)} FROM memories WHERE id IN ({_in(ids)})", ids
            )
        }
        mirrors = load_mirrors(conn, ids)
    finally:
        conn.execute("COMMIT")
    targets = [
        Target(mid, pending[mid][0], pending[mid][1], local.get(mid), mirrors.get(mid, Mirror()))
        for mid in ids
        if mid in pending
    ]
    return targets, rows[-1][0]


def load_mirrors(conn: sqlite3.Connection, ids: list[str]) -> dict[str, Mirror]:
    if not ids:
        return {}
    out = {}
    for mid, vault, muninn_id, chash, mstate, forgotten_at, intent in conn.execute(
        f"SELECT memory_id, vault, muninn_id, content_hash, state, forgotten_at, intent "
        f"FROM mirror_ids WHERE memory_id IN ({_in(ids)})",
        ids,
    ):
        out[mid] = Mirror(
            vault, muninn_id, chash, mstate, forgotten_at, json.loads(intent) if intent else None
        )
    return out


def has_pending(conn: sqlite3.Connection, ids: list[str]) -> set[str]:
    if not ids:
        return set()
    return {
        r[0]
        for r in conn.execute(
            f"SELECT DISTINCT memory_id FROM mirror_outbox WHERE status = 'pending' "
            f"AND memory_id IN ({_in(ids)})",
            ids,
        )
    }


def owners(conn: sqlite3.Connection, vault: str, muninn_id: str, besides: str) -> list[str]:
    """The other local memories whose active mirror is this MuninnDB memory."""
    return [
        r[0]
        for r in conn.execute(
            "SELECT memory_id FROM mirror_ids WHERE vault = ? AND muninn_id = ? "
            "AND state = 'active' AND memory_id != ?",
            (vault, muninn_id, besides),
        )
    ]


def local_ids(conn: sqlite3.Connection, pairs: list[tuple[str, str]]) -> dict[str, str]:
    """MuninnDB id -> local memory id for (vault, MuninnDB id) pairs this store mirrors."""
    if not pairs:
        return {}
    where = " OR ".join("(vault = ? AND muninn_id = ?)" for _ in pairs)
    params = [x for pair in pairs for x in pair]
    return {
        r[0]: r[1]
        for r in conn.execute(f"SELECT muninn_id, memory_id FROM mirror_ids WHERE {where}", params)
    }


def claimed(conn: sqlite3.Connection, vault: str, muninn_id: str, besides: str) -> bool:
    """Another local memory's active mirror is the same MuninnDB memory (content
    de-duplication can map several local memories to one)."""
    return (
        conn.execute(
            "SELECT 1 FROM mirror_ids WHERE vault = ? AND muninn_id = ? AND memory_id != ? "
            "AND state = 'active' LIMIT 1",
            (vault, muninn_id, besides),
        ).fetchone()
        is not None
    )


def write_intents(store: Store, intents: dict[str, tuple[str, dict[str, Any]]]) -> None:
    """Record the remembers about to be sent (memory id -> (vault, intent)) before sending:
    after a crash, the next sync can find and repair what MuninnDB created."""
    if not intents:
        return
    from sqlalchemy import text

    with store.write() as session:
        session.execute(
            text(
                "INSERT INTO mirror_ids (memory_id, vault, state, intent) "
                "VALUES (:m, :v, 'none', :i) "
                "ON CONFLICT(memory_id) DO UPDATE SET intent = excluded.intent"
            ),
            [
                {"m": mid, "v": vault, "i": json.dumps(intent, ensure_ascii=False)}
                for mid, (vault, intent) in intents.items()
            ],
        )


def mark_in_doubt(store: Store, memory_ids: list[str]) -> None:
    """Record, before forgetting or restoring these memories' copies, that their state
    is about to change: the outcome is recorded only when the page commits, and a sync
    killed (or left without an answer) in between must not trust the old state next time
    (a copy recorded active that MuninnDB has forgotten is lost for good once the memory
    is restored locally)."""
    if not memory_ids:
        return
    from sqlalchemy import text

    with store.write() as session:
        session.execute(
            text("UPDATE mirror_ids SET state = :s WHERE memory_id = :m"),
            [{"s": schema.MirrorState.IN_DOUBT.value, "m": mid} for mid in memory_ids],
        )


def commit(
    store: Store,
    outcomes: Iterable[Outcome],
    *,
    max_attempts: int,
    retry_at: str | None,
    state: dict[str, str | None],
) -> None:
    """Settle each reconciled memory's rows (up to its `upto`) and its mirror state, and
    update the sync's durable state, in one transaction."""
    from sqlalchemy import text

    now = schema.now_iso()
    settle: dict[str, list[dict[str, Any]]] = {"done": [], "failed": [], "retry": [], "wait": []}
    mirrors = []
    for o in outcomes:
        t = o.target
        settle[o.status].append(
            {
                "m": t.memory_id,
                "u": t.upto,
                "e": o.error,
                "now": now,
                "at": retry_at,
                "max": max_attempts,
            }
        )
        if o.mirror is not None:
            m = o.mirror
            mirrors.append(
                {
                    "m": t.memory_id,
                    "v": m.vault or "",
                    "id": m.muninn_id,
                    "h": m.content_hash,
                    "s": m.state,
                    "f": m.forgotten_at,
                    "i": json.dumps(m.intent) if m.intent else None,
                    "now": now,
                }
            )
    sql = {
        "done": "UPDATE mirror_outbox SET status = 'done', done_at = :now, last_error = :e, "
        "next_attempt_at = NULL WHERE memory_id = :m AND id <= :u "
        "AND status IN ('pending', 'failed')",
        "failed": "UPDATE mirror_outbox SET status = 'failed', attempts = attempts + 1, "
        "last_error = :e WHERE memory_id = :m AND id <= :u AND status = 'pending'",
        "retry": "UPDATE mirror_outbox SET attempts = attempts + 1, last_error = :e, "
        "next_attempt_at = :at, status = CASE WHEN attempts + 1 >= :max "
        "THEN 'failed' ELSE 'pending' END "
        "WHERE memory_id = :m AND id <= :u AND status = 'pending'",
        "wait": "UPDATE mirror_outbox SET last_error = :e, next_attempt_at = :at "
        "WHERE memory_id = :m AND id <= :u AND status = 'pending'",
    }
    with store.write() as session:
        for status, params in settle.items():
            if params:
                session.execute(text(sql[status]), params)
        if mirrors:
            session.execute(
                text(
                    "INSERT INTO mirror_ids (memory_id, vault, muninn_id, content_hash, state, "
                    "forgotten_at, intent, synced_at) VALUES (:m, :v, :id, :h, :s, :f, :i, :now) "
                    "ON CONFLICT(memory_id) DO UPDATE SET vault = excluded.vault, "
                    "muninn_id = excluded.muninn_id, content_hash = excluded.content_hash, "
                    "state = excluded.state, forgotten_at = excluded.forgotten_at, "
                    "intent = excluded.intent, synced_at = excluded.synced_at"
                ),
                mirrors,
            )
        set_states(session, state)


def record_pulled(session: Session, memory_id: str, mirror: Mirror) -> None:
    """A memory imported from MuninnDB is already there: record it, settle its rows."""
    from sqlalchemy import text

    now = schema.now_iso()
    session.flush()
    session.execute(
        text(
            "INSERT INTO mirror_ids (memory_id, vault, muninn_id, content_hash, state, synced_at) "
            "VALUES (:m, :v, :id, :h, 'active', :now) ON CONFLICT(memory_id) DO NOTHING"
        ),
        {
            "m": memory_id,
            "v": mirror.vault,
            "id": mirror.muninn_id,
            "h": mirror.content_hash,
            "now": now,
        },
    )
    session.execute(
        text(
            "UPDATE mirror_outbox SET status = 'done', done_at = :now, last_error = 'pulled' "
            "WHERE memory_id = :m AND status = 'pending'"
        ),
        {"m": memory_id, "now": now},
    )


# -- durable sync state (the `state` table, keys `mirror.*`) --------------------------


def get_states(conn: sqlite3.Connection) -> dict[str, str]:
    return state.read_prefix(conn, "mirror.")


def set_states(session: Session, values: dict[str, str | None]) -> None:
    state.put_many(session, values)


def install_id(store: Store) -> str:
    """A random id per database: with the outbox row id it makes op_ids globally unique
    (MuninnDB keeps op_id receipts across all vaults, and other machines write too)."""
    with store.read() as conn:
        found = get_states(conn).get(K_INSTALL)
    if found:
        return found
    with store.write() as session:
        existing = state.get(session, K_INSTALL)
        if existing is not None:
            return existing
        value = secrets.token_hex(8)
        set_states(session, {K_INSTALL: value})
        return value


# -- maintenance and reporting -----------------------------------------------------------


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    found = dict(conn.execute("SELECT status, count(*) FROM mirror_outbox GROUP BY status"))
    return {s: int(found.get(s, 0)) for s in ("pending", "done", "failed")}


def failed_rows(conn: sqlite3.Connection, limit: int = 20) -> list[dict[str, Any]]:
    return [
        dict(zip(("id", "memory_id", "op", "attempts", "last_error", "created_at"), r, strict=True))
        for r in conn.execute(
            "SELECT id, memory_id, op, attempts, last_error, created_at FROM mirror_outbox "
            "WHERE status = 'failed' ORDER BY id DESC LIMIT ?",
            (limit,),
        )
    ]


def retry_failed(store: Store) -> int:
    """Re-queue failed rows and forget the backoff: the user says "try now"."""
    from sqlalchemy import text

    with store.write() as session:
        n = affected(
            session.execute(
                text(
                    "UPDATE mirror_outbox SET status = 'pending', attempts = 0, "
                    "next_attempt_at = NULL WHERE status = 'failed'"
                )
            )
        )
        session.execute(
            text(
                "UPDATE mirror_outbox SET next_attempt_at = NULL "
                "WHERE status = 'pending' AND next_attempt_at IS NOT NULL"
            )
        )
        set_states(session, {K_RETRY: None, K_FAILURES: None})
    return n


def resync(store: Store) -> int:
    """Queue every memory once more, e.g. after changing muninn.vault."""
    from sqlalchemy import text

    with store.write() as session:
        n = affected(
            session.execute(
                text(
                    "INSERT INTO mirror_outbox "
                    "(memory_id, op, payload, status, attempts, created_at) "
                    "SELECT id, 'resync', '{}', 'pending', 0, :now FROM memories ORDER BY seq"
                ),
                {"now": schema.now_iso()},
            )
        )
    return n


def prune(store: Store, now: str, batch: int = 5000) -> int:
    """Delete done rows older than a week, a bounded chunk at a time."""
    from datetime import timedelta

    from sqlalchemy import text

    cutoff = schema.to_iso(schema.parse_iso(now) - timedelta(days=PRUNE_AFTER_DAYS))
    with store.write() as session:
        n = affected(
            session.execute(
                text(
                    "DELETE FROM mirror_outbox WHERE id IN (SELECT id FROM mirror_outbox WHERE "
                    "status = 'done' AND done_at < :c ORDER BY id LIMIT :n)"
                ),
                {"c": cutoff, "n": batch},
            )
        )
    return n
