"""One poll of mitmweb: find finished LLM flows, journal each exactly once, prune them.

Exactly-once rests on three things committed together in one transaction per chunk:
the journal rows (unique on the flow id and on a content fingerprint) and the cursor
(a flow timestamp at or below which every flow is known to be handled). The cursor
never passes a flow that is still in flight, so it is looked at again next poll.
Pruning happens only after the commit, and only for flows the journal holds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engram import journaling
from engram.journaling import CapturePolicy
from engram.sources.mitmweb import (
    BodyMissing,
    FlowGone,
    MitmwebClient,
    body_not_stored,
    is_complete,
    raw_request,
    raw_response,
)
from engram.store import journal, state
from engram.store.db import Store
from engram.wire.detect import endpoint_of, format_from_path
from engram.wire.model import Format

log = logging.getLogger("engram.watcher")

STREAM_WARNING = (
    "mitmweb did not keep the body of a streamed LLM response, so engram cannot read the "
    "assistant's reply. Load engram's addon, which streams and keeps bodies: "
    '`mitmweb -s "$(engram addon-path)" --set web_password=...` '
    "(or add `--set store_streamed_bodies=true` to your own streaming setup)."
)
CHUNK = 25  # flows fetched and committed together: bounds memory to ~25 bodies


@dataclass
class WatchSettings:
    prune: bool = True
    body_limit: int = 20 * 1024 * 1024
    hosts: list[str] = field(default_factory=list)
    ignore_hosts: list[str] = field(default_factory=list)
    capture: CapturePolicy = field(default_factory=CapturePolicy)  # ignored projects


@dataclass
class PollResult:
    flows: int = 0  # flows mitmweb listed that were new to us
    llm: int = 0  # of those, LLM API calls (complete or not)
    captured: int = 0  # journal rows created
    duplicates: int = 0  # flows the journal already had (after a restart)
    bytes: int = 0
    in_flight: int = 0  # LLM flows not finished yet: looked at again next poll
    pending: int = 0  # new rows that await analysis
    skipped: int = 0  # side calls, internal calls, nothing new
    failed: int = 0  # rows recorded with an error
    withheld: int = 0  # not journaled: paused, or an ignored project
    vanished: int = 0  # deleted between listing and fetching
    pruned: int = 0
    ids: list[int] = field(default_factory=list)

    @property
    def eventful(self) -> bool:
        return bool(self.flows or self.captured)

    def fields(self) -> dict[str, Any]:
        return {
            "flows": self.flows,
            "llm": self.llm,
            "captured": self.captured,
            "bytes": self.bytes,
            "pending": self.pending,
            "duplicates": self.duplicates,
            "in_flight": self.in_flight,
            "failed": self.failed,
            "withheld": self.withheld,
            "pruned": self.pruned,
        }

    def describe(self) -> str:
        text = (
            f"Fetched {self.flows} new flows -> {self.llm} LLM requests -> "
            f"captured {self.bytes / 1024:.1f} KB"
        )
        extra = []
        if self.captured:
            extra.append(f"{self.captured} journaled ({self.pending} to analyze)")
        if self.duplicates:
            extra.append(f"{self.duplicates} already journaled")
        if self.in_flight:
            extra.append(f"{self.in_flight} in flight")
        if self.failed:
            extra.append(f"{self.failed} with errors")
        if self.withheld:
            extra.append(f"{self.withheld} withheld (paused or an ignored project)")
        if self.pruned:
            extra.append(f"{self.pruned} pruned")
        return text + (" (" + ", ".join(extra) + ")" if extra else "")


def host_matches(host: str, patterns: list[str]) -> bool:
    host = host.lower()
    return any(host == p.lower() or host.endswith("." + p.lower().lstrip(".")) for p in patterns)


def is_llm_flow(flow: dict[str, Any], settings: WatchSettings) -> bool:
    """Decided on metadata alone, before any body is fetched."""
    req = flow.get("request")
    if not isinstance(req, dict) or str(req.get("method", "")).upper() != "POST":
        return False
    host = str(req.get("pretty_host") or req.get("host") or "")
    if settings.ignore_hosts and host_matches(host, settings.ignore_hosts):
        return False
    if settings.hosts and not host_matches(host, settings.hosts):
        return False
    return format_from_path(endpoint_of(str(req.get("path", "")))) is not Format.UNKNOWN


class Watcher:
    """The mitmweb watcher: a `PollSource` for the scheduler."""

    name = "mitmweb"

    def __init__(
        self,
        store: Store,
        client: MitmwebClient,
        settings: WatchSettings,
        warn: Callable[[str, str], None] | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.settings = settings
        self.warn = warn or (lambda code, message: log.warning(message))

    def cursor(self) -> float | None:
        with self.store.read() as conn:
            value = state.read(conn, state.MITMWEB_CURSOR)
        return float(value) if value else None

    def poll(self) -> PollResult:
        result = PollResult()
        flows = self.client.flows()
        cursor = self.cursor()
        fresh = [f for f in flows if cursor is None or _ts(f) > cursor]
        if self.settings.prune and len(fresh) < len(flows):
            result.pruned += self._prune_leftovers([f for f in flows if f not in fresh])
        result.flows = len(fresh)
        llm = [f for f in fresh if is_llm_flow(f, self.settings)]
        result.llm = len(llm)
        undone = [f for f in llm if not is_complete(f)]
        result.in_flight = len(undone)
        ready = [f for f in llm if is_complete(f)]
        in_flight_min = min((_ts(f) for f in undone), default=None)
        for start in range(0, max(len(ready), 1), CHUNK):
            chunk = ready[start : start + CHUNK]
            following = ready[start + CHUNK : start + CHUNK + 1]
            unhandled = [t for t in (in_flight_min, *(_ts(f) for f in following)) if t is not None]
            new_cursor = safe_cursor(fresh, min(unhandled, default=None), cursor)
            prunable = self._capture_chunk(chunk, new_cursor, result)
            cursor = new_cursor
            if self.settings.prune and prunable:
                try:
                    result.pruned += self.client.delete(prunable)
                except Exception as exc:  # pruning is housekeeping: never fatal
                    log.warning("pruning mitmweb flows failed: %s", exc)
        return result

    def _prune_leftovers(self, old: list[dict[str, Any]]) -> int:
        """Flows below the cursor that are still listed: journaled, but the process died
        before pruning them. Delete those the journal holds (and only those)."""
        keys = {
            f"mitmweb:{f.get('id')}": str(f.get("id")) for f in old if is_llm_flow(f, self.settings)
        }
        if not keys:
            return 0
        with self.store.write() as session:
            held = journal.existing_keys(session, list(keys))
        try:
            return self.client.delete([keys[k] for k in held])
        except Exception as exc:
            log.warning("pruning mitmweb flows failed: %s", exc)
            return 0

    def _capture_chunk(
        self, chunk: list[dict[str, Any]], new_cursor: float | None, result: PollResult
    ) -> list[str]:
        captures: list[journaling.Capture] = []
        for flow in chunk:
            capture = self._fetch(flow, result)
            if capture is not None:
                captures.append(capture)
        prunable: list[str] = []
        with self.store.write() as session:
            for capture in captures:
                recorded = journaling.record(session, capture, self.settings.capture)
                prunable.append(capture.source_key.removeprefix("mitmweb:"))
                if recorded.withheld:
                    result.withheld += 1
                    continue
                if not recorded.created:
                    result.duplicates += 1
                    continue
                result.captured += 1
                result.bytes += recorded.bytes
                result.ids.append(recorded.id)
                if recorded.status == "pending":
                    result.pending += 1
                elif recorded.status == "failed":
                    result.failed += 1
                else:
                    result.skipped += 1
            if new_cursor is not None:
                state.put(session, state.MITMWEB_CURSOR, repr(new_cursor))
        return prunable

    def _fetch(self, flow: dict[str, Any], result: PollResult) -> journaling.Capture | None:
        flow_id = str(flow.get("id"))
        errors: list[str] = []
        if flow.get("error"):
            errors.append(str((flow.get("error") or {}).get("msg") or "flow error"))
        req_body = self._body(flow, "request", errors)
        if req_body is FlowGone:
            result.vanished += 1
            return None
        resp_body: Any = None
        if isinstance(flow.get("response"), dict):
            if body_not_stored(flow):
                errors.append("response body not stored by mitmweb (streamed)")
                self._warn_once(state.MITMWEB_STREAM_WARNING, STREAM_WARNING)
            else:
                resp_body = self._body(flow, "response", errors)
                if resp_body is FlowGone:
                    result.vanished += 1
                    return None
        return journaling.Capture(
            source="mitmweb",
            source_key=f"mitmweb:{flow_id}",
            request=raw_request(flow, req_body),
            response=raw_response(flow, resp_body),
            error="; ".join(errors) or None,
        )

    def _body(self, flow: dict[str, Any], message: str, errors: list[str]) -> Any:
        meta = flow.get(message) or {}
        length = meta.get("contentLength")
        if length is not None and length > self.settings.body_limit:
            errors.append(
                f"{message} body of {length} bytes exceeds the "
                f"{self.settings.body_limit} byte limit; not fetched"
            )
            return None
        if length == 0:
            return b""
        try:
            return self.client.content(str(flow.get("id")), message)
        except FlowGone:
            return FlowGone
        except BodyMissing as exc:
            errors.append(str(exc))
            return None

    def _warn_once(self, key: str, message: str) -> None:
        with self.store.write() as session:
            if state.get(session, key):
                return
            from engram.store import schema

            state.put(session, key, schema.now_iso())
        self.warn("store_streamed_bodies", message)


def _ts(flow: dict[str, Any]) -> float:
    try:
        return float(flow.get("timestamp_created") or 0.0)
    except (TypeError, ValueError):
        return 0.0


def safe_cursor(
    fresh: list[dict[str, Any]], unhandled_min: float | None, old: float | None
) -> float | None:
    """The new cursor: the largest listed timestamp strictly below the earliest flow that
    is still unhandled (in flight, or in a later chunk); all listed flows when none is.
    Flows sharing a timestamp with an unhandled one stay above the cursor."""
    limit = float("inf") if unhandled_min is None else unhandled_min
    best = max((t for t in map(_ts, fresh) if t < limit), default=None)
    if best is None or (old is not None and best <= old):
        return old
    return best
