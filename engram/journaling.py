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
leaves no row at all, for a captured request (`record`) and a transcript's piece
(`record_pieces`) alike. Every source must pass the config's policy: it is a required
argument, so a new source cannot forget it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from engram.store import journal, pause, schema
from engram.wire.model import Exchange, Format, Kind, RawRequest, RawResponse, Turn, Usage

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
    return schema.to_iso(datetime.fromtimestamp(ts, UTC))


# -- what must leave no trace ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CapturePolicy:
    """What a source must not journal, from `[capture]` in the config. Every source
    passes one to `record()` or `record_pieces()`; the pause is read from the database
    there."""

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
    session: Session,
    project: str | None,
    times: Sequence[float | None],
    policy: CapturePolicy,
    *,
    now: bool = True,
) -> str | None:
    """Why a capture must leave no trace ("ignored project", "paused"), or None.

    Paused: when one of `times` (the exchange's own) falls in a pause, or, with `now`,
    while a pause is in force. A live capture passes `now` (whatever it sees during a
    pause is withheld); a transcript read after the fact does not when it has times,
    so a back-fill or a follower catching up keeps what was said before the pause and
    drops what was said during it, whenever it reads it. The periods are read once per
    transaction (a transcript batch journals hundreds of pieces in one).
    """
    if policy.ignores(project):
        return "ignored project"
    periods = session.info.get("engram.pause")
    if periods is None:
        periods = session.info["engram.pause"] = pause.load(session)
    if not periods:
        return None
    in_force = pause.current(periods, datetime.now(UTC))
    if in_force is not None and (now or in_force.by == pause.UNREADABLE):
        # A damaged pause value has no known start: nothing is kept until `resume`.
        return "paused"
    for ts in times:
        if ts is None:
            continue
        try:
            when = datetime.fromtimestamp(ts, UTC)
        except (OverflowError, OSError, ValueError):
            continue
        if pause.covers(periods, when):
            return "paused"
    return None


def record(session: Session, capture: Capture, policy: CapturePolicy) -> Recorded:
    """Journal one capture (idempotent). Never raises for bad traffic: a flow that
    cannot be parsed becomes a `failed` row carrying its error. A capture that `policy`
    or a pause withholds leaves no row (`Recorded.withheld` says why)."""
    from engram.wire import parse_exchange

    request, response = capture.request, capture.response
    response_bytes = len(response.body or b"") if response is not None else 0
    size = len(request.body or b"") + response_bytes
    fp = fingerprint(request, response)
    existing = journal.find(session, capture.source_key, fp)
    if existing is not None:
        return Recorded(
            existing.id, False, existing.kind, existing.status, existing.new_turns, size
        )
    exchange = parse_exchange(request, response, project_hint=capture.project_hint)
    exchange.host = exchange.host or request.host
    return _journal(
        session,
        policy,
        capture.source,
        capture.source_key,
        fp,
        exchange,
        error=capture.error,
        sizes=(len(request.body or b""), response_bytes),
        recall=request.recall,
        started_at=request.timestamp_start,
    )


@dataclass(slots=True)
class Piece:
    """A piece of a conversation a source read already in turns, with no HTTP request
    around it (an agent's transcript): the turns it adds, its reply last."""

    source: str  # "transcript"
    source_key: str  # unique and stable: the same piece read again has the same key
    conversation: str
    turns: list[Turn]
    project: str | None = None
    model: str | None = None
    format: Format = Format.UNKNOWN  # the API format the agent's messages are in
    provider: str = ""
    location: str = ""  # where it was read (a file), shown as the endpoint
    usage: Usage = field(default_factory=Usage)
    started_at: float | None = None
    ended_at: float | None = None
    bytes: int = 0


def piece_fingerprint(piece: Piece) -> str:
    return hashlib.sha256(f"piece\0{piece.source_key}".encode("utf-8", "replace")).hexdigest()


def count_piece(prior: dict[str, int], turns: list[Turn]) -> None:
    """Advance a source's occurrence counts (see `record_piece`) past turns it read but
    does not journal (journaled by an earlier read). The turns are counted as the
    journal counts them: with their `<private>` passages removed."""
    from engram.wire import count_occurrences
    from engram.wire.private import strip_turns

    count_occurrences(prior, strip_turns(turns)[0])


def record_pieces(
    session: Session, pieces: list[tuple[Piece, dict[str, int]]], policy: CapturePolicy
) -> list[Recorded | None]:
    """`record_piece` for a batch, with one lookup of what is journaled already; None
    for a piece that was (its turns are counted in its `prior` all the same)."""
    keys = [p.source_key for p, _ in pieces]
    known = journal.known_keys(session, keys, [piece_fingerprint(p) for p, _ in pieces])
    out: list[Recorded | None] = []
    for piece, prior in pieces:
        if piece.source_key in known:
            count_piece(prior, piece.turns)
            out.append(None)
        else:
            out.append(_record_new_piece(session, piece, prior, policy))
    return out


def record_piece(
    session: Session, piece: Piece, prior: dict[str, int], policy: CapturePolicy
) -> Recorded:
    """Journal one piece of a conversation (idempotent on its key).

    `prior` holds the occurrence counts of the conversation's turns before this piece,
    as read by the same source, and is advanced past it: the delta is then the same as
    for a request carrying the whole history (see `wire.compute_delta`), so a turn that
    another door (the proxy, mitmweb) journaled already is not journaled again. A piece
    that `policy` or a pause withholds leaves no row, like a capture.
    """
    existing = journal.find(session, piece.source_key, piece_fingerprint(piece))
    if existing is not None:
        count_piece(prior, piece.turns)
        return Recorded(
            existing.id, False, existing.kind, existing.status, existing.new_turns, piece.bytes
        )
    return _record_new_piece(session, piece, prior, policy)


def _record_new_piece(
    session: Session, piece: Piece, prior: dict[str, int], policy: CapturePolicy
) -> Recorded:
    exchange = Exchange(
        format=piece.format,
        provider=piece.provider,
        endpoint=piece.location,
        model=piece.model,
        conversation=piece.conversation,
        project=piece.project,
        turns=list(piece.turns),
        usage=piece.usage,
        started_at=piece.started_at,
        ended_at=piece.ended_at,
    )
    fp = piece_fingerprint(piece)
    return _journal(
        session,
        policy,
        piece.source,
        piece.source_key,
        fp,
        exchange,
        prior=prior,
        sizes=(piece.bytes, 0),
        read_later=True,
    )


def _journal(
    session: Session,
    policy: CapturePolicy,
    source: str,
    source_key: str,
    fp: str,
    exchange: Exchange,
    *,
    sizes: tuple[int, int],
    error: str | None = None,
    prior: dict[str, int] | None = None,
    recall: dict[str, Any] | None = None,
    started_at: float | None = None,
    read_later: bool = False,
) -> Recorded:
    """What every door shares once it has an `Exchange`: privacy, the conversation
    delta, the status, redaction, the row. `read_later`: the exchange was read after
    the fact (a transcript), so its own times decide whether a pause covers it."""
    from engram.redact import redact
    from engram.wire import count_occurrences, has_substance
    from engram.wire.private import scrub_echoes, strip_exchange, strip_private

    passages = strip_exchange(exchange)  # before the delta: a turn hashes the same each time
    exchange.project = clean(exchange.project)
    exchange.conversation = clean(exchange.conversation) or ""
    exchange.model = clean(exchange.model)
    transport_failed = error is not None
    error = error or exchange.error

    if read_later:
        times = [t for t in (exchange.started_at, exchange.ended_at) if t is not None]
        reason = withheld(session, exchange.project, times, policy, now=not times)
    else:
        reason = withheld(session, exchange.project, [started_at], policy)
    if reason is not None:
        if reason == "paused" and exchange.kind is Kind.CONVERSATION and exchange.turns:
            # Seen, not stored: after `engram resume` the agent repeats this history,
            # and none of it may come back as new.
            _advance_conversation(
                session, exchange, transport_failed=transport_failed, prior=prior, paused=True
            )
        elif prior is not None:
            count_occurrences(prior, exchange.turns)
        return Recorded(0, False, str(exchange.kind), "withheld", 0, sum(sizes), withheld=reason)

    def scrub(text: str) -> str:
        return redact(clean(text) or "")

    new: list[Turn] = []
    if exchange.kind is not Kind.CONVERSATION:
        status = "skipped"
    elif exchange.turns:
        new = _advance_conversation(
            session, exchange, transport_failed=transport_failed, prior=prior
        )
        if transport_failed and exchange.reply is None:
            # The request never got an answer: its turns stay unseen so that the agent's
            # retry carries them as new, instead of losing them with this failed flow.
            status = "skipped"
        else:
            # Only context is new (a system turn, harness markup): nothing to analyse.
            status = "pending" if any(has_substance(t) for t in new) else "skipped"
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
        source=source,
        source_key=source_key,
        fingerprint=fp,
        kind=str(exchange.kind),
        format=str(exchange.format),
        provider=exchange.provider,
        host=clean(exchange.host) or "",
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
        request_bytes=sizes[0],
        response_bytes=sizes[1],
        new_turns=len(new),
        turns=json.dumps([turn_to_json(t, scrub) for t in new], ensure_ascii=False),
        status=status,
        error=scrub(error) if error else None,
        recall=json.dumps(recall, ensure_ascii=False) if recall else None,
    )
    return Recorded(row.id, True, row.kind, row.status, row.new_turns, sum(sizes))


def _advance_conversation(
    session: Session,
    exchange: Exchange,
    *,
    transport_failed: bool,
    prior: dict[str, int] | None = None,
    paused: bool = False,
) -> list[Turn]:
    from engram.wire import compute_delta

    key = exchange.conversation or "unknown"
    # Held for the transaction: a source that journals many pieces of one conversation
    # in a batch (a transcript) neither reloads the row nor decodes its counts again.
    held = session.info.setdefault("engram.conversations", {})
    if key in held:
        conv, counts = held[key]
    else:
        # First seen while paused: not even its project is kept (it is filled in later).
        conv = journal.conversation_seen(session, key, None if paused else exchange.project)
        counts = json.loads(conv.seen)
    # A truncated reply is left out: the agent's next request carries what it kept of it.
    reply = [exchange.reply] if exchange.reply and not exchange.truncated else []
    turns = [*exchange.turns, *reply]
    new, seen = compute_delta(counts, turns, prior)
    if transport_failed and exchange.reply is None:
        held[key] = (conv, counts)
        return new  # counted as seen only once a reply arrives (see record())
    held[key] = (conv, seen)
    if paused:
        journal.note_seen(session, conv, seen)
        return []
    journal.advance_conversation(session, conv, seen, exchange.project)
    return new
