"""The data side of the MuninnDB stand-in (tests/support/muninn_stub.py): an in-memory
MuninnDB that answers tool calls the way the real server does.

Reproduced, after /work/shared/reference/muninndb.md and the server's source: content
de-duplication per vault by exact text (`hint: duplicate_content`; soft-deleted memories
do not count; no de-duplication inside one batch, whose items only see what existed
before the call); `op_id` receipts global across vaults (`idempotent: true`); batches of
1..50 where one item without content rejects the call and other per-item failures come
back as `status: "error"`; the 16 KiB content limit (-32000 `tool error: ...`); concept
<= 512 bytes; tags over 128 characters dropped; soft delete (repeatable), restore,
link; recall with `memories: null` and a hint when nothing matches, full-text scores
below 0.4, mode presets, an explicit threshold, `since`/`before` windows (which add the
90 earliest memories of the window to the candidates) and a full-text indexing delay.
"""

from __future__ import annotations

import collections
import hashlib
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

VAULT_RULE = re.compile(r"[a-z0-9_-]{1,64}")
_B32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_WORD = re.compile(r"\w+")
_MODES = {"semantic": 0.3, "recent": 0.2, "balanced": 0.0, "deep": 0.1}
TOOLS = (
    "muninn_remember",
    "muninn_remember_batch",
    "muninn_recall",
    "muninn_read",
    "muninn_forget",
    "muninn_restore",
    "muninn_link",
    "muninn_status",
    "muninn_where_left_off",
)


class ToolError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class StubMemory:
    id: str
    vault: str
    content: str
    concept: str = ""
    tags: list[str] = field(default_factory=list)
    type: str = ""
    summary: str = ""
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    written: float = field(default_factory=time.monotonic)
    state: str = "active"
    access_count: int = 0

    def as_json(self, *, full: bool, score: float | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "concept": self.concept,
            "content": self.content if full else (self.summary or self.content[:500]),
        }
        if score is not None:
            data["score"] = score
        data.update(
            {
                "confidence": 1,
                "state": self.state if full else "",
                "created_at": _iso(self.created_at),
                "last_access": _iso(self.created_at),
                "access_count": self.access_count,
                "trust": "inferred",
            }
        )
        if full and self.tags:
            data["tags"] = list(self.tags)
        if not full:
            data["source_type"] = "inferred"
        return data


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: Any, name: str) -> datetime:
    try:
        value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise ToolError(
            -32602, f"invalid '{name}': must be ISO 8601 (e.g. 2026-01-15T09:00:00Z)"
        ) from None
    if value.tzinfo is None:
        raise ToolError(-32602, f"invalid '{name}': must be ISO 8601 (e.g. 2026-01-15T09:00:00Z)")
    return value.astimezone(UTC)


class MuninnEngine:
    """All state lives here and survives the HTTP front's restarts (a durable server)."""

    def __init__(self, *, index_delay: float = 0.08, max_content: int = 16384) -> None:
        self.index_delay = index_delay
        self.max_content = max_content
        self.memories: dict[str, StubMemory] = {}
        self.receipts: dict[str, str] = {}  # op_id -> id, global across vaults
        self.hashes: dict[tuple[str, str], str] = {}  # (vault, sha256) -> id
        self.links: dict[tuple[str, str, str, str], float] = {}
        self.calls: collections.Counter[str] = collections.Counter()
        self.lock = threading.RLock()

    # -- inspection --------------------------------------------------------------------

    def indexed(self) -> bool:
        """Whether every memory written so far is visible to full-text recall: tests wait
        for this instead of sleeping past the indexing delay."""
        now = time.monotonic()
        return all(now - m.written >= self.index_delay for m in self.memories.values())

    def active(self, vault: str | None = None) -> list[StubMemory]:
        with self.lock:
            return [
                m
                for m in self.memories.values()
                if m.state == "active" and (vault is None or m.vault == vault)
            ]

    def purge(self, muninn_id: str) -> None:
        """Hard-delete, as the server does once the 7-day recovery window has passed."""
        with self.lock:
            mem = self.memories.pop(muninn_id, None)
            if mem is not None:
                self.hashes.pop((mem.vault, _sha(mem.content)), None)

    # -- tools -------------------------------------------------------------------------

    def _new_id(self, created: datetime) -> str:
        ms = int(created.timestamp() * 1000)
        n = (ms << 80) | secrets.randbits(80)
        return "".join(_B32[(n >> (5 * i)) & 31] for i in reversed(range(26)))

    def _write(self, vault: str, args: dict[str, Any]) -> tuple[str, str | None]:
        content = str(args.get("content") or "")
        created = (
            _parse_time(args["created_at"], "created_at")
            if args.get("created_at")
            else datetime.now(UTC)
        )
        key = (vault, _sha(content))
        existing = self.memories.get(self.hashes.get(key, ""))
        if existing is not None and existing.state == "active":
            existing.access_count += 1
            return existing.id, "duplicate_content"
        size = len(content.encode("utf-8"))
        if size > self.max_content:
            raise ToolError(
                -32000,
                f"tool error: write engram: erf: content exceeds max "
                f"length {self.max_content} (got {size})",
            )
        concept = str(args["concept"]) if isinstance(args.get("concept"), str) else ""
        if len(concept.encode("utf-8")) > 512:
            raise ToolError(-32000, "tool error: concept exceeds max length 512")
        tags = [t for t in args.get("tags") or [] if isinstance(t, str) and 0 < len(t) <= 128]
        mem = StubMemory(
            self._new_id(created),
            vault,
            content,
            concept,
            tags[:50],
            str(args.get("type") or ""),
            str(args.get("summary") or ""),
            created,
        )
        self.memories[mem.id] = mem
        self.hashes[key] = mem.id
        return mem.id, None

    def _get(self, vault: str, args: dict[str, Any]) -> StubMemory:
        mid = args.get("id")
        if not isinstance(mid, str) or not mid:
            raise ToolError(-32602, "invalid params: 'id' is required")
        mem = self.memories.get(mid)
        if mem is None or mem.vault != vault:
            raise ToolError(-32000, "tool error: engram not found")
        return mem

    def tool(self, name: str, vault: str, args: dict[str, Any]) -> dict[str, Any]:
        if name == "muninn_remember":
            op_id = args.get("op_id") if isinstance(args.get("op_id"), str) else ""
            if op_id and op_id in self.receipts:
                return {"id": self.receipts[op_id], "idempotent": True}
            if not isinstance(args.get("content"), str) or not args["content"].strip():
                raise ToolError(-32602, "invalid params: 'content' is required")
            mid, hint = self._write(vault, args)
            if op_id:
                self.receipts[op_id] = mid
            out = {"id": mid, "concept": args.get("concept") or ""}
            return {**out, "hint": hint} if hint else out
        if name == "muninn_remember_batch":
            return self._batch(vault, args)
        if name == "muninn_recall":
            return self._recall(vault, args)
        if name == "muninn_read":
            return self._get(vault, args).as_json(full=True)
        if name == "muninn_forget":
            self._get(vault, args).state = "soft_deleted"
            return {"ok": True}
        if name == "muninn_restore":
            mem = self._get(vault, args)
            if mem.state != "soft_deleted":
                raise ToolError(
                    -32000, f"tool error: restore: engram {mem.id} is not soft-deleted or archived"
                )
            mem.state = "active"
            self.hashes[(vault, _sha(mem.content))] = mem.id
            return {"id": mem.id, "concept": mem.concept, "restored": True, "state": "active"}
        if name == "muninn_link":
            src, dst, rel = (args.get(k) for k in ("source_id", "target_id", "relation"))
            if not (isinstance(src, str) and isinstance(dst, str) and isinstance(rel, str)):
                raise ToolError(
                    -32602, "invalid params: 'source_id', 'target_id', 'relation' are required"
                )
            for mid in (src, dst):
                self._get(vault, {"id": mid})
            self.links[(vault, src, dst, rel)] = float(args.get("weight") or 0.8)
            return {"ok": True}
        if name == "muninn_status":
            return {"vault": vault, "total": len(self.active(vault)), "health": "ok"}
        if name == "muninn_where_left_off":
            limit = max(1, min(50, int(args.get("limit") or 10)))
            recent = sorted(self.active(vault), key=lambda m: m.created_at, reverse=True)
            return {
                "memories": [m.as_json(full=False) for m in recent[:limit]],
                "count": min(limit, len(recent)),
                "hint": "most recent",
            }
        raise ToolError(-32602, f"unknown tool: {name}")

    def _batch(self, vault: str, args: dict[str, Any]) -> dict[str, Any]:
        items = args.get("memories")
        if not isinstance(items, list) or not items:
            raise ToolError(
                -32602, "invalid params: 'memories' is required and must be a non-empty array"
            )
        if len(items) > 50:
            raise ToolError(-32602, "invalid params: 'memories' exceeds maximum of 50")
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise ToolError(-32602, f"invalid params: memories[{i}] must be an object")
            if not isinstance(item.get("content"), str) or not item["content"].strip():
                raise ToolError(-32602, f"invalid params: memories[{i}].content is required")
        # No de-duplication inside one batch: items only see what existed before the call.
        fresh: set[tuple[str, str]] = set()
        results = []
        for i, item in enumerate(items):
            key = (vault, _sha(item["content"]))
            try:
                if key in fresh:
                    self.hashes.pop(key, None)
                mid, _hint = self._write(vault, item)
                fresh.add(key)
                results.append(
                    {"index": i, "id": mid, "concept": item.get("concept") or "", "status": "ok"}
                )
            except ToolError as exc:
                if exc.code == -32602:
                    raise
                results.append(
                    {
                        "index": i,
                        "status": "error",
                        "error": exc.args[0].removeprefix("tool error: "),
                    }
                )
        return {"results": results, "total": len(results)}

    def _recall(self, vault: str, args: dict[str, Any]) -> dict[str, Any]:
        ctx = args.get("context")
        if ctx is None:
            raise ToolError(-32602, "invalid params: 'context' is required")
        phrases = [ctx] if isinstance(ctx, str) else ctx
        if not isinstance(phrases, list) or not [p for p in phrases if isinstance(p, str)]:
            raise ToolError(-32602, "invalid params: 'context' must contain at least one string")
        mode = args.get("mode")
        if mode is not None and mode not in _MODES:
            raise ToolError(-32602, f"unknown recall mode {mode!r}")
        threshold = args.get("threshold", _MODES.get(str(mode), 0.5) or 0.5)
        limit = max(1, min(100, int(args.get("limit") or 10)))
        since = _parse_time(args["since"], "since") if args.get("since") else None
        before = _parse_time(args["before"], "before") if args.get("before") else None
        terms = {w for p in phrases if isinstance(p, str) for w in _WORD.findall(p.lower())}
        now = time.monotonic()
        live = sorted(self.active(vault), key=lambda m: m.id)

        def in_window(m: StubMemory) -> bool:
            return (since is None or m.created_at >= since) and (
                before is None or m.created_at < before
            )

        # Candidates as the engine gathers them: full-text hits (once indexed), the 30
        # most recent, and with a time bound the 90 earliest memories in the window.
        scores: dict[str, float] = {}
        for m in live:
            words = set(_WORD.findall(f"{m.concept} {m.content}".lower()))
            hit = len(terms & words) / len(terms) if terms else 0.0
            if hit and now - m.written >= self.index_delay:
                scores[m.id] = round(0.39 * hit, 6)
        extra = live[-30:] + ([m for m in live if in_window(m)][:90] if since or before else [])
        for m in extra:
            scores.setdefault(m.id, 0.0)
        found = [
            (s, self.memories[i])
            for i, s in scores.items()
            if s >= threshold and in_window(self.memories[i])
        ]
        found.sort(key=lambda p: (-p[0], p[1].id))
        memories = [m.as_json(full=False, score=s) for s, m in found[:limit]] or None
        out: dict[str, Any] = {"memories": memories, "total": len(found)}
        if memories is None:
            out["hint"] = (
                "No results matched. For session continuity try mode='recent', or "
                "use muninn_where_left_off. For semantic recall, provide more "
                "specific context."
            )
        return out


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
