"""mitmproxy flow files (`mitmdump -w PATH`) as a capture source.

`ingest_file` reads a whole file once; `FlowFileWatcher` follows a file that mitmdump is
still appending to, keeping the byte offset after the last whole flow in the database
(committed with the journal rows, like the mitmweb cursor). A partial record at the tail
raises FlowReadException: the offset stays before it and it is read again next time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engram import journaling
from engram.errors import EngramError
from engram.journaling import CapturePolicy
from engram.sources.watcher import PollResult, WatchSettings, is_llm_flow
from engram.store import state
from engram.store.db import Store
from engram.wire.model import RawRequest, RawResponse

BATCH = 25


@dataclass
class IngestResult:
    flows: int = 0
    llm: int = 0
    captured: int = 0
    duplicates: int = 0
    failed: int = 0
    bytes: int = 0
    withheld: int = 0  # not journaled: paused, or an ignored project
    partial: bool = False


def request_of(flow: Any, body: bytes | None) -> RawRequest:
    """A mitmproxy flow's request as engram's RawRequest (flow files and the addon)."""
    req = flow.request
    return RawRequest(
        headers=list(req.headers.items(multi=True)),
        body=body,
        timestamp_start=req.timestamp_start,
        timestamp_end=req.timestamp_end,
        method=req.method,
        scheme=req.scheme,
        host=req.pretty_host,
        port=req.port,
        path=req.path,
    )


def response_of(flow: Any, body: bytes | None) -> RawResponse | None:
    resp = flow.response
    if resp is None:
        return None
    return RawResponse(
        headers=list(resp.headers.items(multi=True)),
        body=body,
        timestamp_start=resp.timestamp_start,
        timestamp_end=resp.timestamp_end,
        status_code=resp.status_code,
    )


def _bounded(message: Any, name: str, limit: int, errors: list[str]) -> bytes | None:
    body = message.get_content(strict=False)
    if body is not None and len(body) > limit:
        errors.append(f"{name} body of {len(body)} bytes exceeds the limit; not read")
        return None
    return body


def _capture(flow: Any, body_limit: int) -> journaling.Capture:
    errors: list[str] = []
    request = request_of(flow, _bounded(flow.request, "request", body_limit, errors))
    response = None
    if flow.response is not None:
        response = response_of(flow, _bounded(flow.response, "response", body_limit, errors))
    if flow.error is not None:
        errors.append(str(flow.error.msg))
    return journaling.Capture(
        source="file",
        source_key=f"file:{flow.id}",
        request=request,
        response=response,
        error="; ".join(errors) or None,
    )


def _is_llm(flow: Any, settings: WatchSettings) -> bool:
    from mitmproxy import http

    if not isinstance(flow, http.HTTPFlow):
        return False
    req = flow.request
    meta = {"request": {"method": req.method, "pretty_host": req.pretty_host, "path": req.path}}
    return is_llm_flow(meta, settings)


def read_from(
    store: Store,
    path: Path,
    offset: int,
    settings: WatchSettings,
    result: IngestResult,
    state_key: str | None = None,
) -> int:
    """Journal the flows after `offset`; return the offset after the last whole flow."""
    from mitmproxy import io as mio
    from mitmproxy.exceptions import FlowReadException

    try:
        fh = path.open("rb")
    except OSError as exc:
        raise EngramError(f"cannot read flow file {path}: {exc.strerror}") from None
    with fh:
        fh.seek(offset)
        reader = mio.FlowReader(fh)
        pending: list[journaling.Capture] = []
        good = offset
        stream = iter(reader.stream())
        while True:
            try:
                flow = next(stream)
            except StopIteration:
                break
            except FlowReadException:
                result.partial = True
                break
            result.flows += 1
            position = fh.tell()
            if _is_llm(flow, settings):
                result.llm += 1
                pending.append(_capture(flow, settings.body_limit))
            if len(pending) >= BATCH:
                _commit(store, pending, position, result, state_key, settings)
                pending = []
            good = position
        _commit(store, pending, good, result, state_key, settings)
    return good


def _commit(
    store: Store,
    captures: list[journaling.Capture],
    offset: int,
    result: IngestResult,
    state_key: str | None,
    settings: WatchSettings,
) -> None:
    with store.write() as session:
        for capture in captures:
            recorded = journaling.record(session, capture, settings.capture)
            if recorded.withheld:
                result.withheld += 1
                continue
            if not recorded.created:
                result.duplicates += 1
                continue
            result.captured += 1
            result.bytes += recorded.bytes
            result.failed += recorded.status == "failed"
        if state_key is not None:
            state.put(session, state_key, str(offset))


def ingest_file(store: Store, path: Path, settings: WatchSettings) -> IngestResult:
    result = IngestResult()
    read_from(store, path, 0, settings, result)
    return result


class FlowFileWatcher:
    """Follows a growing flow file: a `PollSource` for the scheduler, like the mitmweb
    watcher."""

    def __init__(
        self,
        store: Store,
        path: Path,
        *,
        capture: CapturePolicy,
        body_limit: int = 20 * 2**20,
    ) -> None:
        self.store = store
        self.path = path.expanduser().absolute()
        self.name = f"flow file {self.path.name}"
        self.settings = WatchSettings(prune=False, body_limit=body_limit, capture=capture)
        self.key = f"flowfile:{self.path}:offset"

    def poll(self) -> PollResult:
        with self.store.read() as conn:
            offset = int(state.read(conn, self.key) or 0)
        try:
            size = os.path.getsize(self.path)
        except OSError:
            return PollResult()  # not created yet: mitmdump may start later
        if size < offset:
            offset = 0  # truncated or replaced: read again; the journal drops duplicates
        result = IngestResult()
        read_from(self.store, self.path, offset, self.settings, result, self.key)
        return PollResult(
            flows=result.flows,
            llm=result.llm,
            captured=result.captured,
            duplicates=result.duplicates,
            bytes=result.bytes,
            failed=result.failed,
            withheld=result.withheld,
        )
