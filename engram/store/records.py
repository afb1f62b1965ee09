"""Plain records handed from the store to the CLI and other consumers.

Both the ORM write path and the sqlite3 read path produce these, so rendering and
JSON output have one shape to deal with whichever path fetched the row.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from engram.errors import EngramError
from engram.store import schema

MEMORY_COLUMNS = (
    "id",
    "content",
    "kind",
    "scope",
    "source",
    "provenance",
    "status",
    "superseded_by",
    "created_at",
    "updated_at",
    "use_count",
    "last_used_at",
    "content_hash",
)


@dataclass(frozen=True, slots=True)
class MemoryRecord:
    id: str
    content: str
    kind: str
    scope: str
    source: str
    provenance: tuple[str, ...]
    status: str
    superseded_by: str | None
    created_at: str
    updated_at: str
    use_count: int
    last_used_at: str | None
    content_hash: str

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any] | Any) -> MemoryRecord:
        """From a sqlite3.Row, a dict, or an ORM object (anything with the columns)."""
        get = row.__getitem__ if hasattr(row, "keys") else lambda k: getattr(row, k)
        values = {k: get(k) for k in MEMORY_COLUMNS}
        prov = values["provenance"]
        values["provenance"] = tuple(json.loads(prov) if isinstance(prov, str) else prov or ())
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["provenance"] = list(self.provenance)
        return data


@dataclass(frozen=True, slots=True)
class EventRecord:
    id: int
    at: str
    action: str
    memory_id: str | None
    actor: str
    detail: dict[str, Any]

    @classmethod
    def from_mapping(cls, row: Any) -> EventRecord:
        get = row.__getitem__ if hasattr(row, "keys") else lambda k: getattr(row, k)
        return cls(
            get("id"),
            get("at"),
            get("action"),
            get("memory_id"),
            get("actor"),
            json.loads(get("detail") or "{}"),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def validate_content(text: str) -> str:
    """The rules every memory text obeys, whoever writes it (CLI, analyzer, import)."""
    if not isinstance(text, str) or not text.strip():
        raise EngramError("memory content is empty")
    text = text.strip()
    if "\x00" in text:
        raise EngramError("memory content contains a NUL character")
    if len(text) > schema.MAX_CONTENT_CHARS:
        raise EngramError(
            f"memory content is {len(text)} characters; the limit is {schema.MAX_CONTENT_CHARS}"
        )
    return text


def validate_kind(kind: str) -> str:
    if kind not in schema.KINDS:
        raise EngramError(f"unknown kind {kind!r} (one of: {', '.join(schema.KINDS)})")
    return kind


def validate_scope(scope: str) -> str:
    """'global' or an absolute directory path (the project), without a trailing slash."""
    scope = scope.strip()
    if scope == "global":
        return scope
    if not scope.startswith("/"):
        raise EngramError(f"scope must be 'global' or an absolute path, got {scope!r}")
    return scope.rstrip("/") or "/"
