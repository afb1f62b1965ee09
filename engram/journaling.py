"""The journal's front door: every source hands each flow it saw to `record()`.

All capture paths (mitmweb watcher, flow files, the proxy, the addon, transcripts) call
`record()` inside their own write transaction, so a source's cursor and the rows it
produced commit together: a crash before the commit loses nothing (the source offers the
flow again), a crash after it duplicates nothing (the source key and the content
fingerprint are unique). Here the flow is parsed, reduced to the turns its conversation
never journaled before, and redacted; `engram.store.journal` only stores the row.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from engram.store import journal, schema
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


def record(session: Session, capture: Capture) -> Recorded:
    """Journal one capture (idempotent). Never raises for bad traffic: a flow that
    cannot be parsed becomes a `failed` row carrying its error."""
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
        capture.source,
        capture.source_key,
        fp,
        exchange,
        error=capture.error,
        sizes=(len(request.body or b""), response_bytes),
        recall=request.recall,
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


def record_pieces(
    session: Session, pieces: list[tuple[Piece, dict[str, int]]]
) -> list[Recorded | None]:
    """`record_piece` for a batch, with one lookup of what is journaled already; None
    for a piece that was (its turns are counted in its `prior` all the same)."""
    from engram.wire import count_occurrences

    keys = [p.source_key for p, _ in pieces]
    known = journal.known_keys(session, keys, [piece_fingerprint(p) for p, _ in pieces])
    out: list[Recorded | None] = []
    for piece, prior in pieces:
        if piece.source_key in known:
            count_occurrences(prior, piece.turns)
            out.append(None)
        else:
            out.append(_record_new_piece(session, piece, prior))
    return out


def record_piece(session: Session, piece: Piece, prior: dict[str, int]) -> Recorded:
    """Journal one piece of a conversation (idempotent on its key).

    `prior` holds the occurrence counts of the conversation's turns before this piece,
    as read by the same source, and is advanced past it: the delta is then the same as
    for a request carrying the whole history (see `wire.compute_delta`), so a turn that
    another door (the proxy, mitmweb) journaled already is not journaled again.
    """
    from engram.wire import count_occurrences

    existing = journal.find(session, piece.source_key, piece_fingerprint(piece))
    if existing is not None:
        count_occurrences(prior, piece.turns)
        return Recorded(
            existing.id, False, existing.kind, existing.status, existing.new_turns, piece.bytes
        )
    return _record_new_piece(session, piece, prior)


def _record_new_piece(session: Session, piece: Piece, prior: dict[str, int]) -> Recorded:
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
        session, piece.source, piece.source_key, fp, exchange, prior=prior, sizes=(piece.bytes, 0)
    )


def _journal(
    session: Session,
    source: str,
    source_key: str,
    fp: str,
    exchange: Exchange,
    *,
    sizes: tuple[int, int],
    error: str | None = None,
    prior: dict[str, int] | None = None,
    recall: dict[str, Any] | None = None,
) -> Recorded:
    """What every door shares once it has an `Exchange`: the conversation delta, the
    status, redaction, the row."""
    from engram.redact import redact
    from engram.wire import has_substance

    exchange.project = clean(exchange.project)
    exchange.conversation = clean(exchange.conversation) or ""
    exchange.model = clean(exchange.model)
    transport_failed = error is not None
    error = error or exchange.error

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
    else:
        # Without the request there is nothing to analyse a reply against.
        status = "failed"
        error = error or "no conversation turns found in the request"

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
) -> list[Turn]:
    from engram.wire import compute_delta

    key = exchange.conversation or "unknown"
    # Held for the transaction: a source that journals many pieces of one conversation
    # in a batch (a transcript) neither reloads the row nor decodes its counts again.
    held = session.info.setdefault("engram.conversations", {})
    if key in held:
        conv, counts = held[key]
    else:
        conv = journal.conversation_seen(session, key, exchange.project)
        counts = json.loads(conv.seen)
    # A truncated reply is left out: the agent's next request carries what it kept of it.
    reply = [exchange.reply] if exchange.reply and not exchange.truncated else []
    turns = [*exchange.turns, *reply]
    new, seen = compute_delta(counts, turns, prior)
    if transport_failed and exchange.reply is None:
        held[key] = (conv, counts)
        return new  # counted as seen only once a reply arrives (see record())
    held[key] = (conv, seen)
    journal.advance_conversation(conv, seen, exchange.project)
    return new
