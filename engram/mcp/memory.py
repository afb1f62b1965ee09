"""What the MCP tools do, without the protocol: plain functions over the store and recall.

Every tool call arrives with a `Caller` (the MCP client's name and the session's
project), so the rules live here and are tested and benchmarked in-process:

- reads (search, recent, explain, the project resource) use read connections only and
  never take the write lock, so a busy proxy or watcher writing next to us neither
  blocks nor is blocked;
- writes go through the same `engram.store.memories` functions as `engram add`,
  `supersede` and `forget` (validation, de-duplication, events, mirror outbox), with
  the client's name as the event's actor (`mcp:<client>`) and the new memory's source;
- text is redacted before it is stored, and memory text again before it is returned
  (a tool result goes upstream to the model's API, like an injected memory);
- a session may change only memories it can see: its project's (and the directories
  above it, which recall also shows it) and global ones. Another project's memory is
  refused without revealing its text or its project.

Measured (bench/mcp_search.py, 10k memories all visible to the session, 2-core machine):
`search` costs 3.9 ms of CPU at p50 (recall's ranking with a pool of 40 instead of 24,
one primary-key read per hit, redaction); the vector index catches up with other
processes' writes off the search path.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from engram.errors import EngramError
from engram.recall.service import Recaller, scopes_for, semantic_search
from engram.redact import redact, redact_with_findings
from engram.store import reader, schema
from engram.store.db import Store
from engram.store.records import MemoryRecord

log = logging.getLogger("engram.mcp")

MAX_QUERY_CHARS = 8000
MAX_REASON_CHARS = 500
SEARCH_LIMIT = (1, 50)
RECENT_LIMIT = (1, 100)
WRITE_SCOPES = ("project", "global")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: the MCP client (as it named itself) and the session's project."""

    client: str
    project: str | None  # an absolute directory; None: the session sees global memories only

    @property
    def actor(self) -> str:
        """How events and new memories name this client: `mcp:<client name>`."""
        return f"mcp:{self.client}"

    @property
    def scopes(self) -> tuple[str, ...]:
        """What this session sees and may change: as recall, the project, the directories
        above it (not `/` or the home directory) and global."""
        return scopes_for(self.project)


def client_label(name: object) -> str:
    """A client's self-reported name, made safe for an event's actor column."""
    text = name if isinstance(name, str) else ""
    label = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:64]
    return label or "unknown"


def memory_view(memory: MemoryRecord, score: float | None = None) -> dict[str, Any]:
    """A memory as a tool returns it (text redacted once more on the way out)."""
    view: dict[str, Any] = {
        "id": memory.id,
        "content": redact(memory.content),
        "kind": memory.kind,
        "scope": memory.scope,
    }
    if score is not None:
        view["score"] = round(score, 4)
    view.update(
        status=memory.status,
        source=memory.source,
        created_at=memory.created_at,
        updated_at=memory.updated_at,
        use_count=memory.use_count,
    )
    return view


def _bounded(value: object, bounds: tuple[int, int], name: str) -> int:
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int):
        raise EngramError(f"{name} must be a whole number from {low} to {high}")
    if not low <= value <= high:
        raise EngramError(f"{name} must be from {low} to {high}, got {value}")
    return value


def _query(query: object) -> str:
    text = query.strip() if isinstance(query, str) else ""
    if not text:
        raise EngramError("query is empty: say what to look for")
    if len(text) > MAX_QUERY_CHARS:
        raise EngramError(f"query is {len(text)} characters; the limit is {MAX_QUERY_CHARS}")
    return text


class MemoryTools:
    """The tools over one store; thread-safe (the server calls it from worker threads)."""

    def __init__(self, store: Store, config: Any, recaller: Recaller | None = None) -> None:
        self.store = store
        self.config = config
        self.recaller = recaller or Recaller(store, config)
        self._refresh_s = self.recaller.config.refresh_ms / 1000
        self._checked = 0.0
        self._refreshing = threading.Lock()

    def _catch_up_later(self) -> None:
        """Other processes' changes reach the vector index off the search path, at most
        every recall.refresh_ms: applying them may embed and store new memories' vectors,
        a write that must not make a search wait for another process's write lock (BM25
        finds a new memory by its words meanwhile; a forgotten one is never returned)."""
        now = time.monotonic()
        if now - self._checked < self._refresh_s or not self._refreshing.acquire(blocking=False):
            return
        self._checked = now

        def run() -> None:
            try:
                self.recaller.refresh()
            except Exception as exc:  # the next check tries again
                log.warning("engram mcp: recall index refresh failed: %s", exc)
            finally:
                self._refreshing.release()

        threading.Thread(target=run, name="engram-mcp-refresh", daemon=True).start()

    def _caught_up(self) -> None:
        """After a write of ours, on the writing thread: the next search finds the new
        memory by meaning too."""
        with self._refreshing:
            try:
                self.recaller.refresh()
            except Exception as exc:
                log.warning("engram mcp: recall index refresh failed: %s", exc)

    def warm(self, background: bool = True) -> None:
        """Load the embedding model and index now (or off-thread), not on the first search."""
        self.store.ensure()
        self.recaller.warm(background=background)

    # -- reads ----------------------------------------------------------------------

    def search(
        self, caller: Caller, query: str, limit: int = 5, scope: str | None = None
    ) -> dict[str, Any]:
        """Recall's hybrid ranking (BM25 and meaning), without its injection gate."""
        text = _query(query)
        limit = _bounded(limit, SEARCH_LIMIT, "limit")
        scopes = self._search_scopes(caller, scope)
        self.recaller.warm()
        self._catch_up_later()
        hits = semantic_search(
            self.store, self.config, text, scopes=scopes, limit=limit, recaller=self.recaller
        )
        return {
            "project": caller.project,
            "memories": [memory_view(m, score) for m, score in hits],
        }

    def recent(self, caller: Caller, limit: int = 10) -> dict[str, Any]:
        """The newest active memories this session sees, newest first."""
        limit = _bounded(limit, RECENT_LIMIT, "limit")
        found: list[MemoryRecord] = []
        with self.store.read() as conn:
            for scope in caller.scopes:
                found += reader.list_memories(conn, scope=scope, limit=limit)
        found.sort(key=lambda m: m.created_at, reverse=True)
        return {"project": caller.project, "memories": [memory_view(m) for m in found[:limit]]}

    def explain(self, caller: Caller, query: str) -> dict[str, Any]:
        """What recall would inject for this text in this project, and why: each
        candidate with its scores and the gate's verdict. Nothing is logged or counted."""
        result = self.recaller.recall(_query(query), caller.project, None, wait=True)
        data = result.to_dict()
        data.pop("cached", None)
        for candidate in data.get("candidates", []):
            if isinstance(candidate.get("content"), str):
                candidate["content"] = redact(candidate["content"])
        return data

    def project_markdown(self, caller: Caller, budget: int) -> str:
        """The session's project and global memories as Markdown, ranked as `engram prime`."""
        from engram.prime import prime

        with self.store.read() as conn:
            text = prime(conn, caller.project, budget).render(caller.project)
        return text or "# Notes from earlier sessions (engram)\n\nNo memories yet.\n"

    # -- writes ---------------------------------------------------------------------

    def add(
        self, caller: Caller, content: str, kind: str | None = None, scope: str = "project"
    ) -> dict[str, Any]:
        from engram.analyzer.quarantine import screen
        from engram.store import memories, review

        target = self._write_scope(caller, scope)
        clean, secrets = _redacted(content)
        # The agent calling this tool may be steered by what it read (tool output, a
        # web page): a payload-shaped memory waits for the user, as the analyzer's do.
        held = [str(f) for f in screen(clean)]
        fields: dict[str, Any] = dict(
            kind=kind or schema.Kind.FACT, scope=target, source=caller.actor, actor=caller.actor
        )
        with self.store.write() as session:
            if held:
                result = review.quarantine(session, clean, reasons=held, **fields)
            else:
                result = memories.add(session, clean, **fields)
        self._caught_up()
        out: dict[str, Any] = {
            "id": result.memory.id,
            "created": result.created,
            "memory": memory_view(result.memory),
        }
        if not result.created:
            out["note"] = f"already remembered as {result.memory.id}; nothing added"
        elif result.memory.status == schema.MemoryStatus.REVIEW:
            out["note"] = (
                f"held for the user's review ({'; '.join(held)}): it is not used until they "
                f"accept it with `engram review accept {result.memory.id}`"
            )
        return _with_redaction_note(out, secrets)

    def supersede(self, caller: Caller, memory_id: str, content: str) -> dict[str, Any]:
        from engram.analyzer.quarantine import screen
        from engram.store import memories, review

        before = self._changeable(caller, memory_id)
        clean, secrets = _redacted(content)
        held = [str(f) for f in screen(clean)]
        with self.store.write() as session:
            if held:  # the old memory stays in use until the user accepts the new one
                result = review.quarantine(
                    session,
                    clean,
                    kind=before.kind,
                    scope=before.scope,
                    source=caller.actor,
                    actor=caller.actor,
                    reasons=held,
                    supersedes=before.id,
                )
            else:
                old, new = memories.supersede(
                    session, before.id, clean, source=caller.actor, actor=caller.actor
                )
        self._caught_up()
        if held:
            out: dict[str, Any] = {
                "id": result.memory.id,
                "superseded": None,
                "memory": memory_view(result.memory),
                "note": f"held for the user's review ({'; '.join(held)}); {before.id} stays "
                f"in use until they accept it with `engram review accept {result.memory.id}`",
            }
        else:
            out = {"id": new.id, "superseded": old.id, "memory": memory_view(new)}
        return _with_redaction_note(out, secrets)

    def forget(self, caller: Caller, memory_id: str, reason: str | None = None) -> dict[str, Any]:
        from engram.store import memories

        before = self._changeable(caller, memory_id)
        why = redact(" ".join(reason.split()))[:MAX_REASON_CHARS] if reason else None
        with self.store.write() as session:
            after = memories.forget(session, before.id, actor=caller.actor, reason=why or None)
        self._caught_up()
        out: dict[str, Any] = {"id": after.id, "status": after.status}
        out["note"] = (
            f"{after.id} was already forgotten"
            if before.status == schema.MemoryStatus.FORGOTTEN
            else f"recall no longer uses {after.id}; `engram restore {after.id}` undoes it"
        )
        return out

    # -- rules ----------------------------------------------------------------------

    def _search_scopes(self, caller: Caller, scope: str | None) -> tuple[str, ...]:
        if scope is None or scope in ("", "all"):
            return caller.scopes
        if scope == "global":
            return ("global",)
        if scope == "project":
            if caller.project is None:
                raise _no_project()
            return caller.scopes[:-1]
        raise EngramError(
            f"scope must be 'project' or 'global' (or left out for both), not {scope!r}"
        )

    def _write_scope(self, caller: Caller, scope: str | None) -> str:
        scope = scope or "project"
        if scope not in WRITE_SCOPES:
            raise EngramError(f"scope must be 'project' or 'global', not {scope!r}")
        if scope == "global":
            return "global"
        if caller.project is None:
            raise _no_project()
        return caller.project

    def _changeable(self, caller: Caller, memory_id: str) -> MemoryRecord:
        """The memory `memory_id` names, if this session may change it."""
        if not isinstance(memory_id, str) or not memory_id.strip():
            raise EngramError("id is empty: give a memory id such as m-7k2q9x4d")
        with self.store.read() as conn:
            try:
                full = reader.resolve_id(conn, memory_id.strip())
            except reader.AmbiguousId:  # its listing would show other projects' text
                raise EngramError(
                    f"id prefix {memory_id!r} matches several memories; give the full id "
                    "(memory_search and memory_recent show it)"
                ) from None
            memory = reader.get_memory(conn, full)
        if memory.scope not in caller.scopes:
            where = caller.project or "no project"
            raise EngramError(
                f"memory {full} belongs to another project; this session ({where}) may change "
                "only its own project's memories and global ones"
            )
        return memory


def _no_project() -> EngramError:
    return EngramError(
        "this session has no project (the client offered no roots and the server was "
        "not started in one)",
        hint="use scope 'global', or start `engram mcp --project DIR`",
    )


def _redacted(content: object) -> tuple[str, list[str]]:
    """The text with secrets replaced, and which kinds of secret were found."""
    if not isinstance(content, str):
        return "", []
    clean, findings = redact_with_findings(content)
    return clean, sorted({f.type for f in findings})


def _with_redaction_note(out: dict[str, Any], secrets: list[str]) -> dict[str, Any]:
    if secrets:
        out["redacted"] = secrets
        note = (
            "secrets in the text were replaced by [REDACTED:<type>] before it was stored; "
            "never store credentials in memory"
        )
        out["note"] = f"{out['note']}; {note}" if out.get("note") else note
    return out
