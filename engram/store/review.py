"""Memories held for review (status `review`): quarantine, list, accept, reject.

The analyzer's guard (engram/analyzer/policy.py) stores a memory whose text looks like
a payload (a network pipeline, a credential URL, words aimed at the model) with status
`review`. Recall, injection, `engram prime` and the MuninnDB mirror only ever read
`active` memories, so a held memory reaches no agent and leaves no machine until a
person accepts it. Why it was held (and which memory it would supersede) is in its
`quarantine` event.

Rejecting keeps the row (status `forgotten`, a `reject` event): the same text from the
analyzer later is then dropped instead of asking again.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engram.errors import EngramError
from engram.store import schema
from engram.store.records import MEMORY_COLUMNS, MemoryRecord

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from engram.store.memories import AddResult

REVIEW = schema.MemoryStatus.REVIEW


@dataclass(frozen=True, slots=True)
class Held:
    memory: MemoryRecord
    reasons: tuple[str, ...]
    supersedes: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.memory.to_dict(),
            "reasons": list(self.reasons),
            "supersedes": self.supersedes,
        }


def quarantine(
    session: Session,
    content: str,
    *,
    kind: str,
    scope: str,
    source: str,
    actor: str,
    reasons: Iterable[str],
    provenance: Iterable[str] = (),
    supersedes: str | None = None,
) -> AddResult:
    """Store `content` held for review (or return the same fact, active or held)."""
    from engram.store import memories

    detail: dict[str, Any] = {"reasons": list(reasons)}
    if supersedes:
        detail["supersedes"] = supersedes
    return memories.add(
        session,
        content,
        kind=kind,
        scope=scope,
        source=source,
        provenance=provenance,
        actor=actor,
        action=schema.Action.QUARANTINE,
        status=REVIEW,
        detail=detail,
    )


def rejected_before(session: Session, scope: str, content: str) -> bool:
    """Whether a person already rejected this fact in this scope."""
    from sqlalchemy import select

    from engram.store.models import Event, Memory

    chash = schema.content_hash(content)
    found = session.scalar(
        select(Memory.id)
        .join(Event, Event.memory_id == Memory.id)
        .where(
            Memory.scope == scope,
            Memory.content_hash == chash,
            Memory.status == schema.MemoryStatus.FORGOTTEN,
            Event.action == schema.Action.REJECT,
        )
        .limit(1)
    )
    return found is not None


def _intent(detail: str | None) -> tuple[tuple[str, ...], str | None]:
    try:
        data = json.loads(detail or "{}")
    except ValueError:
        return (), None
    return tuple(str(r) for r in data.get("reasons", ())), data.get("supersedes")


def held(conn: sqlite3.Connection, limit: int | None = None) -> list[Held]:
    """Memories waiting for review, oldest first, with why they wait."""
    cols = ", ".join(f"m.{c}" for c in MEMORY_COLUMNS)
    sql = (
        f"SELECT {cols}, (SELECT e.detail FROM events e WHERE e.memory_id = m.id "
        f"AND e.action = ? ORDER BY e.id DESC LIMIT 1) AS held_detail "
        f"FROM memories m WHERE m.status = ? ORDER BY m.created_at, m.seq"
    )
    params: list[Any] = [schema.Action.QUARANTINE, REVIEW]
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    out = []
    for row in conn.execute(sql, params):
        reasons, supersedes = _intent(row["held_detail"])
        out.append(Held(MemoryRecord.from_mapping(row), reasons, supersedes))
    return out


def count(conn: sqlite3.Connection) -> int:
    return int(
        conn.execute("SELECT count(*) FROM memories WHERE status = ?", (REVIEW,)).fetchone()[0]
    )


def _held_memory(session: Session, memory_id: str) -> Any:
    from engram.store import memories

    memory = memories.get(session, memory_id)
    if memory.status != REVIEW:
        raise EngramError(f"memory {memory.id} is {memory.status}, not held for review")
    return memory


@dataclass(frozen=True, slots=True)
class Accepted:
    memory: MemoryRecord  # the active memory (an existing one when it was a duplicate)
    superseded: str | None  # the memory it replaced, if it was a held supersede
    duplicate: bool  # the same fact was already active: the held copy was retired


def accept(session: Session, memory_id: str, *, actor: str = "cli") -> Accepted:
    """Make a held memory active (and carry out the supersede it was held with)."""
    from sqlalchemy import select

    from engram.store import memories, outbox
    from engram.store.models import Event, Memory

    memory = _held_memory(session, memory_id)
    now = schema.now_iso()
    other = memories.find_active(session, memory.scope, memory.content_hash)
    if other is not None:
        memory.status = schema.MemoryStatus.FORGOTTEN
        memory.updated_at = now
        memories.log_event(session, schema.Action.ACCEPT, memory.id, actor, duplicate_of=other.id)
        return Accepted(MemoryRecord.from_mapping(other), None, True)
    detail = session.scalar(
        select(Event.detail)
        .where(Event.memory_id == memory.id, Event.action == schema.Action.QUARANTINE)
        .order_by(Event.id.desc())
        .limit(1)
    )
    _reasons, supersedes = _intent(detail)
    memory.status = schema.MemoryStatus.ACTIVE
    memory.updated_at = now
    memories.log_event(session, schema.Action.ACCEPT, memory.id, actor)
    outbox.enqueue(session, memory.id, "add")
    replaced = None
    if supersedes:
        old = session.scalar(select(Memory).where(Memory.id == supersedes))
        if old is not None and old.status == schema.MemoryStatus.ACTIVE:
            old.status = schema.MemoryStatus.SUPERSEDED
            old.superseded_by = memory.id
            old.updated_at = now
            memories.log_event(session, schema.Action.SUPERSEDE, old.id, actor, by=memory.id)
            outbox.enqueue(session, old.id, "supersede", by=memory.id)
            replaced = old.id
    return Accepted(MemoryRecord.from_mapping(memory), replaced, False)


def reject(session: Session, memory_id: str, *, actor: str = "cli") -> MemoryRecord:
    """Retire a held memory for good: the analyzer will not propose it again."""
    from engram.store import memories

    memory = _held_memory(session, memory_id)
    memory.status = schema.MemoryStatus.FORGOTTEN
    memory.updated_at = schema.now_iso()
    memories.log_event(session, schema.Action.REJECT, memory.id, actor)
    return MemoryRecord.from_mapping(memory)
