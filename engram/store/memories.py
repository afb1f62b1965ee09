"""Changing memories: every write goes through here, in one transaction with its event.

All functions take an open ORM session from `Store.write()`; the caller's transaction
makes a change, its log entry and its MuninnDB mirror outbox row atomic (the outbox is
filled whether or not the mirror is enabled: see engram/store/outbox.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engram.errors import EngramError, NotFound
from engram.store import outbox, schema
from engram.store.models import Event, Memory
from engram.store.records import (
    MemoryRecord,
    validate_content,
    validate_kind,
    validate_scope,
)


@dataclass(frozen=True, slots=True)
class AddResult:
    memory: MemoryRecord
    created: bool  # False: the same fact was already active in this scope


def log_event(
    session: Session, action: str, memory_id: str | None, actor: str, **detail: Any
) -> None:
    session.add(
        Event(
            at=schema.now_iso(),
            action=action,
            memory_id=memory_id,
            actor=actor,
            detail=event_detail(**detail),
        )
    )


def event_detail(**detail: Any) -> str:
    """An event's `detail` column: JSON, keys sorted."""
    return json.dumps(detail, ensure_ascii=False, sort_keys=True)


def get(session: Session, memory_id: str) -> Memory:
    memory = session.scalar(select(Memory).where(Memory.id == memory_id))
    if memory is None:
        raise NotFound(f"no memory with id {memory_id}")
    return memory


def find_active(session: Session, scope: str, chash: str) -> Memory | None:
    return session.scalar(
        select(Memory).where(
            Memory.scope == scope, Memory.content_hash == chash, Memory.status == "active"
        )
    )


def _extend_provenance(memory: Memory, provenance: Iterable[str]) -> None:
    """The same fact seen again: remember where, too."""
    known = json.loads(memory.provenance)
    new = [p for p in dict.fromkeys(provenance) if p not in known]
    if new:
        memory.provenance = json.dumps(known + new)


def extend_provenance(session: Session, memory_id: str, provenance: Iterable[str]) -> MemoryRecord:
    """Fold a restatement into an existing memory (the analyzer found it said already in
    other words): its provenance grows, nothing else changes."""
    memory = get(session, memory_id)
    _extend_provenance(memory, provenance)
    return MemoryRecord.from_mapping(memory)


def clean_content(content: str) -> str:
    """Memory text as it may be stored: secrets redacted, then the content rules checked.

    Every write path (add, edit, supersede, import, the analyzer, the MCP server) comes
    through here, so no memory is ever stored, mirrored or injected with a secret in it,
    whoever wrote it. A redacted value shows as `[REDACTED:<type>]`.
    """
    from engram.redact import redact

    if isinstance(content, str):
        content = redact(content)
    return validate_content(content)


def _unused_id(session: Session) -> str:
    for _ in range(20):
        candidate = schema.new_id()
        if session.scalar(select(Memory.seq).where(Memory.id == candidate)) is None:
            return candidate
    raise EngramError("could not allocate a unique memory id")  # 2**40 ids: not in practice


def add(
    session: Session,
    content: str,
    *,
    kind: str = "fact",
    scope: str = "global",
    source: str = "manual",
    provenance: Iterable[str] = (),
    created_at: str | None = None,
    actor: str = "cli",
    action: str = "add",
    status: str = "active",
    detail: dict[str, Any] | None = None,
) -> AddResult:
    """Add a memory unless the same fact is already active in the scope (then return it).

    `status="review"` holds it for `engram review` (engram/store/review.py): the same
    text already waiting there is returned instead, and nothing is queued for the
    mirror until it is accepted. `detail` goes into the event (e.g. why it is held)."""
    content = clean_content(content)
    kind = validate_kind(kind)
    scope = validate_scope(scope)
    chash = schema.content_hash(content)
    existing = find_active(session, scope, chash)
    if existing is None and status == schema.MemoryStatus.REVIEW:
        existing = session.scalar(
            select(Memory).where(
                Memory.scope == scope, Memory.content_hash == chash, Memory.status == status
            )
        )
    if existing is not None:
        _extend_provenance(existing, provenance)
        return AddResult(MemoryRecord.from_mapping(existing), created=False)
    now = schema.now_iso()
    memory = Memory(
        id=_unused_id(session),
        content=content,
        kind=kind,
        scope=scope,
        source=source,
        provenance=json.dumps(list(dict.fromkeys(provenance))),
        status=status,
        created_at=created_at or now,
        updated_at=now,
        use_count=0,
        content_hash=chash,
    )
    session.add(memory)
    session.flush()
    log_event(
        session,
        action,
        memory.id,
        actor,
        content=content,
        kind=kind,
        scope=scope,
        source=source,
        **(detail or {}),
    )
    if status == schema.MemoryStatus.ACTIVE:
        outbox.enqueue(session, memory.id, "add")
    return AddResult(MemoryRecord.from_mapping(memory), created=True)


def edit(session: Session, memory_id: str, content: str, *, actor: str = "cli") -> MemoryRecord:
    memory = get(session, memory_id)
    content = clean_content(content)
    chash = schema.content_hash(content)
    if memory.status == "active":
        other = find_active(session, memory.scope, chash)
        if other is not None and other.id != memory.id:
            raise EngramError(
                f"that text is already memory {other.id}", hint=f"forget {memory.id} instead"
            )
    old = memory.content
    memory.content = content
    memory.content_hash = chash
    memory.updated_at = schema.now_iso()
    log_event(session, "edit", memory.id, actor, old=old, new=content)
    outbox.enqueue(session, memory.id, "edit")
    return MemoryRecord.from_mapping(memory)


def supersede(
    session: Session,
    memory_id: str,
    content: str,
    *,
    kind: str | None = None,
    source: str = "manual",
    provenance: Iterable[str] = (),
    actor: str = "cli",
) -> tuple[MemoryRecord, MemoryRecord]:
    """Replace a memory by a corrected one; the old one stays, marked and linked."""
    old = get(session, memory_id)
    if old.status != "active":
        raise EngramError(
            f"memory {old.id} is {old.status}; only active memories can be superseded"
        )
    content = clean_content(content)
    if schema.content_hash(content) == old.content_hash:
        raise EngramError(f"the new text is the same as memory {old.id}")
    result = add(
        session,
        content,
        kind=kind or old.kind,
        scope=old.scope,
        source=source,
        provenance=provenance,
        actor=actor,
        action="add",
    )
    old.status = "superseded"
    old.superseded_by = result.memory.id
    old.updated_at = schema.now_iso()
    log_event(session, "supersede", old.id, actor, by=result.memory.id)
    outbox.enqueue(session, old.id, "supersede", by=result.memory.id)
    return MemoryRecord.from_mapping(old), result.memory


def forget(
    session: Session, memory_id: str, *, actor: str = "cli", reason: str | None = None
) -> MemoryRecord:
    """Stop using a memory; `reason` (why, in the caller's words) goes into its event."""
    memory = get(session, memory_id)
    if memory.status == "forgotten":
        return MemoryRecord.from_mapping(memory)
    previous = memory.status
    memory.status = "forgotten"
    memory.updated_at = schema.now_iso()
    extra = {"reason": reason} if reason else {}
    log_event(session, "forget", memory.id, actor, previous=previous, **extra)
    outbox.enqueue(session, memory.id, "forget")
    return MemoryRecord.from_mapping(memory)


def restore(session: Session, memory_id: str, *, actor: str = "cli") -> MemoryRecord:
    memory = get(session, memory_id)
    if memory.status == "active":
        return MemoryRecord.from_mapping(memory)
    if memory.status == schema.MemoryStatus.REVIEW:
        raise EngramError(
            f"memory {memory.id} is held for review, not forgotten",
            hint=f"`engram review accept {memory.id}` makes it active",
        )
    other = find_active(session, memory.scope, memory.content_hash)
    if other is not None:
        raise EngramError(f"the same fact is active as memory {other.id}; nothing to restore")
    previous = memory.status
    memory.status = "active"
    memory.superseded_by = None
    memory.updated_at = schema.now_iso()
    log_event(session, "restore", memory.id, actor, previous=previous)
    outbox.enqueue(session, memory.id, "restore")
    return MemoryRecord.from_mapping(memory)
