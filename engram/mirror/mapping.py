"""How an engram memory looks in MuninnDB, and back.

- kind -> `type`: preference, decision, fact and procedure are MuninnDB built-ins;
  `gotcha` is not, and MuninnDB keeps any other string as a free label.
- `concept`: a short label (the memory's opening words), well under the 512-byte limit.
- `tags`: `engram`, `engram:<local id>` (so a pull recognises memories it already has),
  `kind:<kind>` (MuninnDB's read answer does not return the type), `source:<source>`,
  and `project:<directory name>` or `scope:global`. MuninnDB silently drops tags over 128
  characters, so each is cut to fit.
- `created_at`: RFC 3339 with milliseconds (MuninnDB derives its time-ordered ids from
  it; finer times keep `engram mirror pull`'s time windows splittable), omitted when
  MuninnDB would refuse it (before 2000 or in the future).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from engram.redact import redact
from engram.store import schema

MAX_CONTENT_BYTES = 16384
MAX_TAG = 128
CONCEPT_CHARS = 60
_WS = re.compile(r"\s+")
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


def concept(content: str) -> str:
    text = _WS.sub(" ", content.strip().splitlines()[0] if content.strip() else "").strip()
    if len(text) <= CONCEPT_CHARS:
        return text
    cut = text[:CONCEPT_CHARS].rsplit(" ", 1)[0] or text[:CONCEPT_CHARS]
    return cut.rstrip(" ,;:.") + "…"


def tags(memory: dict[str, Any]) -> list[str]:
    scope = memory["scope"]
    where = "scope:global" if scope == "global" else f"project:{Path(scope).name or '/'}"
    out = [
        "engram",
        f"engram:{memory['id']}",
        f"kind:{memory['kind']}",
        f"source:{memory['source']}",
        where,
    ]
    return [t[:MAX_TAG] for t in out]


def rfc3339(text: str | None) -> str | None:
    if not text:
        return None
    try:
        value = schema.parse_iso(text)
    except ValueError:
        return None
    if value < _EARLIEST or value > datetime.now(UTC) + timedelta(minutes=4):
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def remember_item(memory: dict[str, Any]) -> dict[str, Any]:
    """The `muninn_remember` arguments (without vault and op_id) for a memories row."""
    item: dict[str, Any] = {
        # Stored text is redacted on write; once more on the way out covers memories
        # written before a redaction rule existed.
        "content": redact(memory["content"]),
        "concept": concept(redact(memory["content"])),
        "type": memory["kind"],
        "tags": tags(memory),
    }
    created = rfc3339(memory.get("created_at"))
    if created:
        item["created_at"] = created
    return item


def too_large(content: str) -> str | None:
    """Why MuninnDB would refuse this content, checked before sending."""
    size = len(content.encode("utf-8"))
    if size > MAX_CONTENT_BYTES:
        return f"content is {size} bytes; MuninnDB's limit is {MAX_CONTENT_BYTES}"
    return None


def kind_from_tags(tag_list: list[str] | None) -> str:
    for tag in tag_list or []:
        if tag.startswith("kind:") and tag[5:] in schema.KINDS:
            return tag[5:]
    return "fact"


def local_id_from_tags(tag_list: list[str] | None) -> str | None:
    for tag in tag_list or []:
        if tag.startswith(f"engram:{schema.ID_PREFIX}"):
            return tag[len("engram:") :]
    return None
