"""mitmproxy flows of an LLM call, built in-process (mitmproxy's own test helpers): for
flow files, and for driving engram's addon without a running mitmproxy."""

from __future__ import annotations

import json
from typing import Any


def anthropic_flow(body: dict[str, Any], reply: dict[str, Any]) -> Any:
    """A finished `POST https://api.anthropic.com/v1/messages` carrying `body`, answered
    200 with `reply` (both JSON)."""
    from mitmproxy.test import tflow, tutils

    req = tutils.treq(
        host="api.anthropic.com",
        port=443,
        scheme=b"https",
        path=b"/v1/messages",
        method=b"POST",
        content=json.dumps(body).encode(),
    )
    req.headers["content-type"] = "application/json"
    resp = tutils.tresp(content=json.dumps(reply).encode())
    resp.headers["content-type"] = "application/json"
    return tflow.tflow(req=req, resp=resp)
