"""`engram mirror pull`: import a vault's memories into the local store (a new machine
bootstraps from the team's MuninnDB). Idempotent: pulling twice adds nothing.

MuninnDB's MCP has no "list everything" tool, so the vault is walked with
`muninn_recall` over time windows (`since` <= created_at < `before`, threshold 0):
given a time bound the server adds the 90 earliest memories of the window to its
candidates, so a window answering fewer than 90 memories has answered all of them, and a
fuller one is split in half until it is not (down to one millisecond; a window that
still holds 90+ memories is reported as incomplete). Recall returns previews, so each
new memory is then read in full with `muninn_read`.

What is imported: active memories only; a memory tagged `engram:<id>` whose local id
exists is ours already; text that is forgotten or superseded in the target scope stays
forgotten (the local store decides). An imported memory is recorded as mirrored only when
the pulled vault is the one its scope maps to; otherwise the next sync copies it to the
scope's own vault and leaves the pulled vault alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from engram.mirror import mapping
from engram.mirror.client import MuninnClient, MuninnToolError
from engram.store import outbox, schema

if TYPE_CHECKING:
    from engram.store.db import Store

FULL = 90  # the server's time-window candidates per recall (3 x 30)
FLOOR = datetime(2000, 1, 1, tzinfo=UTC)  # MuninnDB refuses created_at before 2000
MAX_WINDOWS = 20_000


@dataclass
class PullReport:
    vault: str
    scope: str
    seen: int = 0
    added: int = 0
    existing: int = 0  # already in the local store (same id or same active fact)
    skipped: int = 0  # forgotten or superseded locally, or not active in MuninnDB
    windows: int = 0
    incomplete: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def walk(client: MuninnClient, vault: str, report: PullReport) -> Iterator[list[str]]:
    """Ids of the vault's active memories, one time window at a time, oldest first."""
    stack = [(FLOOR, datetime.now(UTC) + timedelta(minutes=5))]
    seen: set[str] = set()
    while stack and report.windows < MAX_WINDOWS:
        lo, hi = stack.pop()
        report.windows += 1
        hits = client.recall(
            vault, ["engram"], threshold=0.0, limit=100, since=_iso(lo), before=_iso(hi)
        )
        if len(hits) >= FULL:
            if hi - lo > timedelta(milliseconds=1):
                mid = lo + (hi - lo) / 2
                stack += [(mid, hi), (lo, mid)]  # the older half comes off the stack first
                continue
            report.incomplete.append(f"{_iso(lo)}: {len(hits)}+ memories share this time")
        ids = [h["id"] for h in hits if h["id"] not in seen]
        seen.update(ids)
        if ids:
            yield ids
    if stack:
        report.incomplete.append(f"stopped after {MAX_WINDOWS} windows")


def pull(store: Store, client: MuninnClient, vault: str, scope: str, own_vault: str) -> PullReport:
    """Import `vault` into `scope`; `own_vault` is the vault that scope mirrors to."""
    from engram.errors import EngramError
    from engram.store import memories

    report = PullReport(vault, scope)
    for ids in walk(client, vault, report):
        records = []
        for mid in ids:
            try:
                data = client.read(vault, mid)
            except MuninnToolError as exc:
                if exc.not_found:
                    continue
                raise
            report.seen += 1
            content = data.get("content")
            if data.get("state") not in ("active", "", None) or not isinstance(content, str):
                report.skipped += 1
                continue
            records.append((mid, content, data.get("tags") or [], data.get("created_at")))
        with store.write() as session:
            for mid, content, tags, created in records:
                local_id = mapping.local_id_from_tags(tags)
                if local_id and _seq(session, local_id) is not None:
                    report.existing += 1
                    continue
                chash = schema.content_hash(content)
                if _retired(session, scope, chash):
                    report.skipped += 1
                    continue
                try:
                    with session.begin_nested():
                        result = memories.add(
                            session,
                            content,
                            kind=mapping.kind_from_tags(tags),
                            scope=scope,
                            source="muninn",
                            provenance=[f"muninn:{vault}/{mid}"],
                            created_at=_local_time(created),
                            actor="mirror-pull",
                            action="import",
                        )
                except EngramError as exc:  # e.g. longer than engram's 4000 characters
                    report.skipped += 1
                    if len(report.rejected) < 20:
                        report.rejected.append(f"{mid}: {exc}")
                    continue
                report.added += result.created
                report.existing += not result.created
                if vault == own_vault:
                    outbox.record_pulled(
                        session, result.memory.id, outbox.Mirror(vault, mid, chash, "active")
                    )
    return report


def _local_time(value: Any) -> str | None:
    """MuninnDB's RFC 3339 (nanoseconds) in engram's sortable form."""
    try:
        return schema.to_iso(schema.parse_iso(value)) if isinstance(value, str) else None
    except ValueError:
        return None


def _seq(session: Any, memory_id: str) -> int | None:
    from sqlalchemy import select

    from engram.store.models import Memory

    return session.scalar(select(Memory.seq).where(Memory.id == memory_id))


def _retired(session: Any, scope: str, chash: str) -> bool:
    """The same fact is forgotten or superseded here, and not active: leave it so."""
    from sqlalchemy import select

    from engram.store.models import Memory

    statuses = set(
        session.scalars(
            select(Memory.status).where(Memory.scope == scope, Memory.content_hash == chash)
        )
    )
    return bool(statuses) and "active" not in statuses
