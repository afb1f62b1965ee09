"""Moving memories in and out as JSONL (lossless enough to round-trip) or Markdown.

Import validates the whole file before writing anything, then applies it in one
transaction: a bad line changes nothing, and re-importing a file adds nothing because
every record goes through the normal de-duplication.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engram.errors import EngramError
from engram.store import schema
from engram.store.records import MemoryRecord, validate_content, validate_kind, validate_scope

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

EXPORT_FIELDS = ("id", "content", "kind", "scope", "status", "source", "created_at", "updated_at")


@dataclass(frozen=True, slots=True)
class ImportRecord:
    line: int
    content: str
    kind: str
    scope: str
    created_at: str | None


@dataclass(frozen=True, slots=True)
class ImportResult:
    added: int
    existing: int
    skipped: int  # records that were not active (superseded/forgotten) in their export


def export_jsonl(memories: Iterable[MemoryRecord]) -> Iterable[str]:
    for m in memories:
        data = m.to_dict()
        yield json.dumps({k: data[k] for k in EXPORT_FIELDS}, ensure_ascii=False) + "\n"


def export_markdown(memories: Iterable[MemoryRecord]) -> Iterable[str]:
    by_scope: dict[str, dict[str, list[MemoryRecord]]] = {}
    for m in memories:
        by_scope.setdefault(m.scope, {}).setdefault(m.kind, []).append(m)
    yield "# engram memories\n"
    for scope in sorted(by_scope, key=lambda s: (s != "global", s)):
        yield f"\n## {'Global' if scope == 'global' else scope}\n"
        for kind in schema.KINDS:
            items = by_scope[scope].get(kind)
            if not items:
                continue
            yield f"\n### {kind.capitalize()}s\n\n"
            for m in items:
                text = " ".join(m.content.split())
                status = "" if m.status == "active" else f" ({m.status})"
                yield f"- {text} `{m.id}`{status}\n"


def parse_jsonl(text: str, name: str) -> tuple[list[ImportRecord], int]:
    """Validate every line; return the active records and how many were skipped."""
    records: list[ImportRecord] = []
    skipped = 0
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EngramError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(data, dict):
            raise EngramError(f"{where}: expected a JSON object")
        if data.get("status", "active") != "active":
            skipped += 1
            continue
        records.append(_record(data, number, where))
    return records, skipped


def _record(data: dict[str, Any], number: int, where: str) -> ImportRecord:
    try:
        content = validate_content(data.get("content", ""))
        kind = validate_kind(data.get("kind", "fact"))
        scope = validate_scope(str(data.get("scope", "global")))
        created = data.get("created_at")
        if created is not None:
            created = schema.to_iso(schema.parse_iso(str(created)))
    except EngramError as exc:
        raise EngramError(f"{where}: {exc}") from None
    except ValueError:
        raise EngramError(f"{where}: created_at is not an ISO 8601 time") from None
    return ImportRecord(number, content, kind, scope, created)


def apply_import(session: Session, records: list[ImportRecord], skipped: int = 0) -> ImportResult:
    from engram.store import memories

    added = existing = 0
    for r in records:
        result = memories.add(
            session,
            r.content,
            kind=r.kind,
            scope=r.scope,
            source="import",
            created_at=r.created_at,
            actor="import",
            action="import",
        )
        added += result.created
        existing += not result.created
    return ImportResult(added, existing, skipped)
