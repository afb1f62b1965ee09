"""engram's mitmproxy addon: `mitmweb -s "$(engram addon-path)"`.

Without it, mitmproxy buffers a whole `text/event-stream` response before the agent
sees a byte; with it, server-sent events pass through live. Streaming normally means
mitmproxy keeps no body, so the addon also turns on `store_streamed_bodies`: the full
response is still there for `engram mitmproxy` to read when the stream ends.

This file imports only mitmproxy, so any mitmproxy 12 installation can load it.
"""

from __future__ import annotations

from mitmproxy import ctx, http

INTERNAL_HEADER = "X-Engram-Internal"


class EngramAddon:
    def running(self) -> None:
        if "store_streamed_bodies" in ctx.options and not ctx.options.store_streamed_bodies:
            ctx.options.update(store_streamed_bodies=True)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        if response is None:
            return
        content_type = response.headers.get("content-type", "")
        if content_type.split(";", 1)[0].strip().lower() == "text/event-stream":
            response.stream = True


addons = [EngramAddon()]
