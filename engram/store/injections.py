"""What recall writes after a request: use counts and `inject` events.

Written off the request path (the proxy's capture writer), several requests per
transaction, so a busy proxy pays next to nothing for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.orm import Session

from engram.store import schema
from engram.store.memories import log_event
from engram.store.models import Memory


@dataclass(frozen=True, slots=True)
class Injection:
    memories: Sequence[tuple[str, float]]  # (id, score) injected into one request
    conversation: str
    query: str  # already redacted and cut


def record(session: Session, injections: Sequence[Injection]) -> int:
    """Bump use counts and log one `inject` event per memory; returns the memories."""
    now = schema.now_iso()
    logged = 0
    for item in injections:
        ids = [mid for mid, _ in item.memories]
        if not ids:
            continue
        session.execute(
            update(Memory)
            .where(Memory.id.in_(ids), Memory.status == schema.MemoryStatus.ACTIVE.value)
            .values(use_count=Memory.use_count + 1, last_used_at=now)
        )
        for mid, score in item.memories:
            log_event(
                session,
                schema.Action.INJECT.value,
                mid,
                "recall",
                conversation=item.conversation,
                score=round(score, 4),
                query=item.query,
            )
        logged += len(ids)
    return logged
