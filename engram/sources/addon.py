"""engram's mitmproxy addon: `mitmweb -s "$(engram addon-path)"`.

Streaming: without it, mitmproxy buffers a whole `text/event-stream` response before the
agent sees a byte; with it, server-sent events pass through live. Streaming normally
means mitmproxy keeps no body, so the addon also turns on `store_streamed_bodies`: the
full response is still there for `engram mitmproxy` to read when the stream ends.

Memory: when mitmproxy runs from engram's own environment (its `mitmweb`), the addon
also recalls and injects memories into LLM completion requests, with the same recall,
gate and time budget as `engram proxy`, failing open. The block lives only in the system
prompt, which the journal never stores, so the watcher cannot learn it back. In another
mitmproxy installation, where engram cannot be imported, the addon only streams.

Writes (the injection logs, and the journal rows under `engram run --mitm`) go to a
thread of their own (sources/deferred_tasks.py: DeferredWriter), handed over without
waiting, so no flow hook and no recall worker waits for the database. One the database
refuses for now (locked past its busy timeout, a full disk) is retried, 0.1 s doubling
up to 5 s, and dropped with one warning after 10 failed passes or when mitmproxy stops;
they used to get one attempt on an executor whose futures nobody read, so a lost
injection log was silent.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
from typing import Any

from mitmproxy import ctx, http

log = logging.getLogger("engram.addon")


class EngramAddon:
    def __init__(self) -> None:
        self._recall: Any = None
        self._journal: Any = None
        self._tried = False
        self._pool = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="engram")
        self._writes: Any = None  # a DeferredWriter, once engram is imported
        self.injected = 0
        self.journal_failures = 0
        self._reported: set[str] = set()

    def load(self, loader: Any) -> None:
        loader.add_option(
            "engram_inject",
            bool,
            True,
            "Inject engram memories into LLM requests (needs engram importable).",
        )
        loader.add_option(
            "engram_budget_ms",
            int,
            0,
            "Longest wait for engram's recall, in ms; past it the request goes as is "
            "(0: engram's proxy.recall_budget_ms, proxy.first_request_budget_ms for a "
            "conversation's first request).",
        )
        loader.add_option(
            "engram_capture",
            bool,
            False,
            "Journal finished LLM flows directly (`engram run --mitm`, where no "
            "watcher reads mitmweb).",
        )

    def running(self) -> None:
        if "store_streamed_bodies" in ctx.options and not ctx.options.store_streamed_bodies:
            ctx.options.update(store_streamed_bodies=True)
        if ctx.options.engram_inject or ctx.options.engram_capture:
            self._setup()

    def done(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._recall is not None:  # engram was importable
            from engram.sources.recall_step import stop_background

            stop_background(self._recall[0])  # no thread left inside onnxruntime at exit
        lost = self.journal_failures
        if self._writes is not None:
            self._writes.close()  # one more try of what waits; what fails is dropped
            lost += self._writes.tasks.dropped["journal_exchange"]
        if lost:
            log.error(
                "engram: %d exchanges could not be journaled (see the first error above)",
                lost,
            )

    def _journal_failed(self, exc: BaseException) -> None:
        """Counted always, said once per distinct error: a full disk fails every flow."""
        from engram.errors import one_line

        self.journal_failures += 1
        text = one_line(exc)  # not SQLAlchemy's text: it holds the conversation
        if text not in self._reported:
            self._reported.add(text)
            log.error("engram could not journal an exchange: %s", text)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        if response is None:
            return
        content_type = response.headers.get("content-type", "")
        if content_type.split(";", 1)[0].strip().lower() == "text/event-stream":
            response.stream = True

    async def request(self, flow: http.HTTPFlow) -> None:
        if self._recall is None:
            return
        target = self._completion_format(flow)
        if target is None:
            return
        body = flow.request.get_content(strict=False)
        if not body:
            return
        flow.metadata["engram_original"] = body  # what the journal records
        if not ctx.options.engram_inject:
            flow.metadata["engram_recall"] = {"outcome": "disabled"}
            return
        step, inject_bytes, raw = self._recall
        request = raw(flow, body)
        try:
            job = step.prepare(body, target, request)
            if hasattr(job, "budget_ms"):
                if ctx.options.engram_budget_ms > 0:  # an explicit budget from mitmproxy
                    job.budget_ms = float(ctx.options.engram_budget_ms)
                budget = job.budget_ms
                loop = asyncio.get_running_loop()
                job = await asyncio.wait_for(
                    loop.run_in_executor(self._pool, step.run, job), budget / 1000
                )
        except TimeoutError:
            from engram.recall.audit import budget_exceeded

            flow.metadata["engram_recall"] = budget_exceeded(job.budget_ms)
            return
        except Exception as exc:  # fail open
            log.debug("engram recall skipped: %r", exc)
            flow.metadata["engram_recall"] = {"outcome": "failed", "reason": f"failed: {exc}"}
            return
        flow.metadata["engram_recall"] = job.record
        if job.block:
            injected = inject_bytes(body, target, job.block, job.walked)
            if injected is not body:
                flow.request.set_content(injected)
                self.injected += 1

    def response(self, flow: http.HTTPFlow) -> None:
        self._capture(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._capture(flow)

    def _capture(self, flow: http.HTTPFlow) -> None:
        if not ctx.options.engram_capture or self._journal is None:
            return
        if "engram_original" not in flow.metadata or flow.metadata.get("engram_captured"):
            return
        flow.metadata["engram_captured"] = True
        record, raw, response = self._journal
        request = raw(flow, flow.metadata["engram_original"])
        request.recall = flow.metadata.get("engram_recall")
        reply = response(flow)
        error = flow.error.msg if flow.error else None
        key = f"addon:{flow.id}"  # retried under the same key: journaled once

        def journal_exchange() -> None:
            record(key, request, reply, error)

        self._writes.defer(journal_exchange)

    # -- engram, when importable -----------------------------------------------------

    def _setup(self) -> None:
        if self._tried:
            return
        self._tried = True
        try:
            from engram.runtime import Runtime
            from engram.sources.deferred_tasks import DeferredWriter, wait_cures
            from engram.sources.flowfile import request_of, response_of
            from engram.wire.injection import inject_bytes
        except ImportError:
            log.info("engram is not importable here: streaming only, no memory injection")
            return
        self._writes = DeferredWriter(logger=log)  # stopped in `done`
        try:
            runtime = Runtime.load()
            store = runtime.store
            policy = runtime.capture_policy()
            recall = runtime.proxy_recall(os.environ.get("ENGRAM_PROJECT"), self._writes.defer)
        except Exception as exc:  # bad config, no recall in this build: still stream
            log.warning("engram memory injection is off: %s", exc)
            return

        self._recall = (recall, inject_bytes, request_of)

        def response(flow: http.HTTPFlow) -> Any:
            return response_of(
                flow, flow.response.get_content(strict=False) if flow.response is not None else None
            )

        def record(key: str, request: Any, reply: Any, error: str | None) -> None:
            from engram import journaling

            try:
                with store.write() as session:
                    journaling.record(
                        session,
                        journaling.Capture(
                            source="addon",
                            source_key=key,
                            request=request,
                            response=reply,
                            project_hint=os.environ.get("ENGRAM_PROJECT"),
                            error=error,
                        ),
                        policy,
                    )
            except Exception as exc:
                if wait_cures(exc):
                    raise  # the database takes no writes now: the writer retries
                self._journal_failed(exc)

        self._journal = (record, request_of, response)

    def _completion_format(self, flow: http.HTTPFlow) -> Any:
        from engram.wire.detect import completion_format
        from engram.wire.markers import INTERNAL_HEADER, is_internal

        req = flow.request
        return completion_format(
            req.method, req.path, internal=is_internal(req.headers.get(INTERNAL_HEADER))
        )


addons = [EngramAddon()]
