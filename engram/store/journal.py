"""The journal: every captured LLM exchange becomes one row, exactly once, redacted.

All capture paths (mitmweb watcher, flow files, the proxy, the addon) hand a `Capture`
and the config's `CapturePolicy` to `record()` inside their own write transaction, so
a source's cursor and the rows it produced commit together: a crash before the commit
loses nothing (the source offers the flow again), a crash after it duplicates nothing
(the source key is unique).

Only the turns never journaled before in their conversation are stored (`turns`), so
storage and analysis grow with the conversation, not with its square.

`record()` is also the one place where privacy rules hold for every source:
`<private>` passages are removed (engram/wire/private.py) and paused periods and
ignored projects leave no row at all (engram/store/privacy.py).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from engram.errors import NotFound
from engram.store import privacy, schema
from engram.store.models import Conversation, ExchangeRow, StateRow
from engram.store.privacy import CapturePolicy
from engram.wire.model import Exchange, Kind, RawRequest, RawResponse, Turn

STATUSES = tuple(schema.ExchangeStatus)
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


def find(session: Session, source_key: str, fp: str) -> ExchangeRow | None:
    return session.scalar(
        select(ExchangeRow).where(
            (ExchangeRow.source_key == source_key) | (ExchangeRow.fingerprint == fp)
        )
    )


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
    existing = find(session, capture.source_key, fp)
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

    reason = privacy.withheld(session, exchange.project, request.timestamp_start, policy)
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

    row = ExchangeRow(
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
        captured_at=schema.now_iso(),
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
    )
    session.add(row)
    session.flush()
    return Recorded(row.id, True, row.kind, row.status, row.new_turns, size)


def _advance_conversation(
    session: Session, exchange: Exchange, *, transport_failed: bool, paused: bool = False
) -> list[Turn]:
    from engram.wire import compute_delta

    key = exchange.conversation or "unknown"
    conv = session.get(Conversation, key)
    now = schema.now_iso()
    if conv is None:
        # First seen while paused: no project either (it is filled in after resume).
        project = None if paused else exchange.project
        conv = Conversation(
            key=key, project=project, seen="{}", exchanges=0, first_at=now, last_at=now
        )
        session.add(conv)
    # A truncated reply is left out: the agent's next request carries what it kept of it.
    reply = [exchange.reply] if exchange.reply and not exchange.truncated else []
    turns = [*exchange.turns, *reply]
    new, seen = compute_delta(json.loads(conv.seen), turns)
    if transport_failed and exchange.reply is None:
        return new  # counted as seen only once a reply arrives (see record())
    conv.seen = json.dumps(seen, separators=(",", ":"))
    if paused:
        return []
    conv.exchanges += 1
    conv.last_at = now
    conv.project = conv.project or exchange.project
    return new


def existing_keys(session: Session, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(keys), 500):
        part = keys[start : start + 500]
        found.update(
            session.scalars(select(ExchangeRow.source_key).where(ExchangeRow.source_key.in_(part)))
        )
    return found


# -- state ---------------------------------------------------------------------------


def get_state(session: Session, key: str, default: str | None = None) -> str | None:
    row = session.get(StateRow, key)
    return row.value if row is not None else default


def set_state(session: Session, key: str, value: str) -> None:
    row = session.get(StateRow, key)
    if row is None:
        session.add(StateRow(key=key, value=value, updated_at=schema.now_iso()))
    else:
        row.value = value
        row.updated_at = schema.now_iso()


# -- reading -------------------------------------------------------------------------

JOURNAL_FIELDS = (
    "id",
    "source",
    "source_key",
    "kind",
    "format",
    "model",
    "conversation",
    "project",
    "new_turns",
    "status",
    "error",
    "captured_at",
    "status_code",
    "endpoint",
    "truncated",
    "attempts",
    "input_tokens",
    "output_tokens",
)


def row_to_dict(row: ExchangeRow, with_turns: bool = False) -> dict[str, Any]:
    data = {f: getattr(row, f) for f in JOURNAL_FIELDS}
    if with_turns:
        data["turns"] = json.loads(row.turns)
    return data


def list_rows(
    session: Session, *, failed: bool = False, status: str | None = None, limit: int = 50
) -> list[ExchangeRow]:
    query = select(ExchangeRow).order_by(ExchangeRow.id.desc()).limit(limit)
    if failed:
        query = query.where(ExchangeRow.status == "failed")
    elif status:
        query = query.where(ExchangeRow.status == status)
    return list(session.scalars(query))


def get_row(session: Session, exchange_id: int) -> ExchangeRow:
    row = session.get(ExchangeRow, exchange_id)
    if row is None:
        raise NotFound(f"no exchange with id {exchange_id}")
    return row


def counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(ExchangeRow.status, func.count()).group_by(ExchangeRow.status))
    return {status: n for status, n in rows}


def pending(session: Session, limit: int | None = None) -> list[ExchangeRow]:
    query = select(ExchangeRow).where(ExchangeRow.status == "pending").order_by(ExchangeRow.id)
    return list(session.scalars(query.limit(limit) if limit else query))


def mark(session: Session, ids: Iterable[int], status: str, error: str | None = None) -> None:
    values: dict[str, Any] = {"status": status, "error": error}
    if status == "analyzed":
        values["analyzed_at"] = schema.now_iso()
    session.execute(update(ExchangeRow).where(ExchangeRow.id.in_(list(ids))).values(**values))
