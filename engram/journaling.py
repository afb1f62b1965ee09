"""The journal's front door: every source hands each flow it saw to `record()`.

All capture paths (mitmweb watcher, flow files, the proxy, the addon, transcripts) call
`record()` inside their own write transaction, so a source's cursor and the rows it
produced commit together: a crash before the commit loses nothing (the source offers the
flow again), a crash after it duplicates nothing (the source key and the content
fingerprint are unique). Here the flow is parsed, reduced to the turns its conversation
never journaled before, and redacted; `engram.store.journal` only stores the row.

This is also the one place where privacy holds for every source: `<private>` passages
are removed (engram/wire/private.py) before the delta, and a paused period
(engram/store/pause.py) or an ignored project (`CapturePolicy`, from `[capture]`)
leaves no row at all. Every source must pass the config's policy: it is a required
argument, so a new source cannot forget it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from engram.store import journal, pause, schema
from engram.wire.model import Exchange, Kind, RawRequest, RawResponse, Turn

_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(slots=True)
class Capture:
    """One request/response pair as a source saw it."""

    source: str  # "mitmweb" | "proxy" | "file" | "addon"
    source_key: str  # unique per flow within the source
    request: RawRequest
    response: RawResponse | None
    project_hint: str | None = None  # e.g. the launched agent's cwd
    error: str | None = None  # the transport's error (connection reset, body not stored ...)


@dataclass(frozen=True, slots=True)
class Recorded:
    id: int
    created: bool  # False: this flow was journaled before (same key or same content)
    kind: str
    status: str
    new_turns: int
    bytes: int
    withheld: str | None = None  # "paused" | "ignored project": nothing was stored


def fingerprint(request: RawRequest, response: RawResponse | None) -> str:
    """Content identity of a flow, independent of the id a source gave it: the same flow
    seen again (mitmweb restarted and replayed, a flow file ingested twice, the API and
    a dump of it) hashes the same; a retried request has another start time."""
    h = hashlib.sha256()
    for part in (request.method, request.host, request.path, repr(request.timestamp_start)):
        h.update(part.encode("utf-8", "replace") + b"\0")
    h.update(request.body or b"")
    h.update(b"\0")
    if response is not None:
        h.update(str(response.status_code).encode() + b"\0")
        h.update(response.body or b"")
    return h.hexdigest()


def clean(text: str | None) -> str | None:
    """Make text storable: JSON bodies may carry lone surrogate escapes (\\ud800), which
    SQLite cannot encode as UTF-8; they become U+FFFD."""
    if text is None:
        return None
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)


def turn_to_json(turn: Turn, redact: Any) -> dict[str, Any]:
    """A turn as stored: redacted, thinking dropped (the model's scratchpad is neither the
    user's words nor its answer, and it is large)."""
    data: dict[str, Any] = {"role": turn.role, "text": redact(turn.text)}
    if turn.tool_calls:
        data["tool_calls"] = [
            {"id": c.id, "name": c.name, "arguments": redact(c.arguments)} for c in turn.tool_calls
        ]
    if turn.tool_results:
        data["tool_results"] = [
            {"call_id": r.call_id, "content": redact(r.content), "is_error": r.is_error}
            for r in turn.tool_results
        ]
    return data


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    from datetime import UTC, datetime

    return schema.to_iso(datetime.fromtimestamp(ts, UTC))


# -- what must leave no trace ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CapturePolicy:
    """What a source must not journal, from `[capture]` in the config. Every source
    passes one to `record()`; the pause is read from the database there."""

    ignore_projects: tuple[str, ...] = ()

    @classmethod
    def from_patterns(cls, patterns: list[str] | tuple[str, ...]) -> CapturePolicy:
        return cls(tuple(p for p in (_normal_pattern(p) for p in patterns) if p))

    def ignores(self, project: str | None) -> bool:
        """Whether `project` (a directory) matches an ignore pattern.

        - A pattern without a slash is matched against each directory name in the
          path: `secret-*` ignores `/work/secret-api` and `/work/secret-api/web`.
        - A pattern with a slash is matched against the whole path and each of its
          parent directories, so a directory covers everything below it: `~/clients/*`
          and `~/clients/acme` both ignore `~/clients/acme/api`. `~` is the home
          directory; a relative pattern (`clients/acme`) matches at any depth.

        Matching is case-sensitive, `*` crosses `/`, and `\\` in a project path
        counts as `/` (Windows agents).
        """
        if not project or not self.ignore_projects:
            return False
        path = project.replace("\\", "/").rstrip("/") or "/"
        names = [n for n in path.split("/") if n]
        ancestors = [path]
        parent = path
        while "/" in parent.strip("/"):
            parent = parent.rsplit("/", 1)[0] or "/"
            ancestors.append(parent)
        for pattern in self.ignore_projects:
            if "/" not in pattern:
                if any(fnmatch.fnmatchcase(n, pattern) for n in names):
                    return True
            elif any(fnmatch.fnmatchcase(a, pattern) for a in ancestors):
                return True
        return False


def _normal_pattern(pattern: str) -> str:
    pattern = pattern.strip()
    if not pattern:
        return ""
    pattern = os.path.expanduser(pattern).replace("\\", "/")
    if pattern != "/":
        pattern = pattern.rstrip("/")
    if "/" in pattern and not pattern.startswith(("/", "*")) and pattern[1:3] != ":/":
        pattern = "*/" + pattern
    return pattern


def withheld(
    session: Session, project: str | None, started_at: float | None, policy: CapturePolicy
) -> str | None:
    """Why a capture must leave no trace ("ignored project", "paused"), or None."""
    if policy.ignores(project):
        return "ignored project"
    periods = pause.load(session)
    if not periods:
        return None
    now = datetime.now(UTC)
    if pause.current(periods, now) is not None:
        return "paused"
    if started_at is not None:
        try:
            when = datetime.fromtimestamp(started_at, UTC)
        except (OverflowError, OSError, ValueError):
            return None
        if pause.covers(periods, when):
            return "paused"
    return None


def record(session: Session, capture: Capture, policy: CapturePolicy) -> Recorded:
    """Journal one capture (idempotent). Never raises for bad traffic: a flow that
    cannot be parsed becomes a `failed` row carrying its error. A capture that `policy`
    or a pause withholds leaves no row (`Recorded.withheld` says why)."""
    from engram.redact import redact
    from engram.wire import parse_exchange
    from engram.wire.private import scrub_echoes, strip_exchange, strip_private

    request, response = capture.request, capture.response
    size = len(request.body or b"") + len(response.body if response and response.body else b"")
    fp = fingerprint(request, response)
    existing = journal.find(session, capture.source_key, fp)
    if existing is not None:
        return Recorded(
            existing.id, False, existing.kind, existing.status, existing.new_turns, size
        )

    exchange = parse_exchange(request, response, project_hint=capture.project_hint)
    passages = strip_exchange(exchange)  # before the delta: a turn hashes the same each time
    exchange.project = clean(exchange.project)
    exchange.conversation = clean(exchange.conversation) or ""
    exchange.model = clean(exchange.model)
    error = capture.error or exchange.error

    reason = withheld(session, exchange.project, request.timestamp_start, policy)
    if reason is not None:
        if reason == "paused" and exchange.kind is Kind.CONVERSATION and exchange.turns:
            # Seen, not stored: after `engram resume` the agent repeats this history,
            # and none of it may come back as new.
            _advance_conversation(
                session, exchange, transport_failed=capture.error is not None, paused=True
            )
        return Recorded(0, False, str(exchange.kind), "withheld", 0, size, withheld=reason)

    def scrub(text: str) -> str:
        return redact(clean(text) or "")

    new: list[Turn] = []
    if exchange.kind is not Kind.CONVERSATION:
        status = "skipped"
    elif exchange.turns:
        new = _advance_conversation(session, exchange, transport_failed=capture.error is not None)
        if capture.error is not None and exchange.reply is None:
            # The request never got an answer: its turns stay unseen so that the agent's
            # retry carries them as new, instead of losing them with this failed flow.
            status = "skipped"
        else:
            status = "pending" if new else "skipped"
        if new and passages:
            new = scrub_echoes(new, passages)
    else:
        # Without the request there is nothing to analyse a reply against.
        status = "failed"
        error = error or "no conversation turns found in the request"
    if error:
        error = strip_private(error)[0]

    row = journal.insert(
        session,
        source=capture.source,
        source_key=capture.source_key,
        fingerprint=fp,
        kind=str(exchange.kind),
        format=str(exchange.format),
        provider=exchange.provider,
        host=clean(exchange.host or request.host) or "",
        endpoint=clean(exchange.endpoint) or "",
        model=exchange.model,
        conversation=exchange.conversation,
        project=exchange.project,
        status_code=exchange.status_code,
        stream=exchange.stream,
        truncated=exchange.truncated,
        started_at=_iso(exchange.started_at),
        ended_at=_iso(exchange.ended_at),
        input_tokens=exchange.usage.input_tokens,
        output_tokens=exchange.usage.output_tokens,
        cache_read_tokens=exchange.usage.cache_read_tokens,
        cache_creation_tokens=exchange.usage.cache_creation_tokens,
        request_bytes=len(request.body or b""),
        response_bytes=len(response.body or b"") if response else 0,
        new_turns=len(new),
        turns=json.dumps([turn_to_json(t, scrub) for t in new], ensure_ascii=False),
        status=status,
        error=scrub(error) if error else None,
        recall=json.dumps(request.recall, ensure_ascii=False) if request.recall else None,
    )
    return Recorded(row.id, True, row.kind, row.status, row.new_turns, size)


def _advance_conversation(
    session: Session, exchange: Exchange, *, transport_failed: bool, paused: bool = False
) -> list[Turn]:
    from engram.wire import compute_delta

    key = exchange.conversation or "unknown"
    # First seen while paused: not even its project is kept (it is filled in later).
    conv = journal.conversation_seen(session, key, None if paused else exchange.project)
    # A truncated reply is left out: the agent's next request carries what it kept of it.
    reply = [exchange.reply] if exchange.reply and not exchange.truncated else []
    turns = [*exchange.turns, *reply]
    new, seen = compute_delta(json.loads(conv.seen), turns)
    if transport_failed and exchange.reply is None:
        return new  # counted as seen only once a reply arrives (see record())
    if paused:
        journal.note_seen(conv, seen)
        return []
    journal.advance_conversation(conv, seen, exchange.project)
    return new
