"""A client for mitmweb 12's HTTP API (see shared/reference/mitmweb.md).

Facts it is built on: auth is always on (Bearer token, then a signed cookie that the
session keeps, which makes each later call ~10x cheaper with an argon2 password); bodies
are not in `/flows`, only in `/flows/<id>/<message>/content.data` (decoded); non-GET
calls need a matching XSRF cookie and header; `/flows` is the whole list every time.
Our own client never goes through a proxy (`trust_env=False`), or it would capture itself.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import requests

from engram.errors import EngramError
from engram.sources.scheduler import SourceAuthError, SourceUnavailable
from engram.wire.model import RawRequest, RawResponse


class MitmwebUnavailable(SourceUnavailable):
    """mitmweb is not answering (not started yet, restarting): retry later."""


class MitmwebAuthError(SourceAuthError):
    """The token was refused: retrying will not help until the user fixes it."""


class FlowGone(EngramError):
    """The flow was deleted (or mitmweb restarted) between listing and fetching it."""


class BodyMissing(EngramError):
    """mitmweb has no body for this message (in flight, aborted, or streamed unstored)."""


AUTH_HINT = (
    "pass the mitmweb password with --token or ENGRAM_MITMWEB_TOKEN (mitmweb's "
    "web_password, e.g. `mitmweb --set web_password=SECRET`)"
)


class MitmwebClient:
    def __init__(self, url: str, token: str | None, *, timeout: float = 15.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False  # never through HTTP(S)_PROXY: that is mitmproxy
        self.session.headers["Accept-Encoding"] = "gzip"
        self.session.headers["User-Agent"] = "engram"
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        xsrf = secrets.token_hex(16)
        self.session.cookies.set("_mitmproxy_xsrf", xsrf)
        self._xsrf = xsrf

    def close(self) -> None:
        self.session.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if method != "GET":
            headers["X-XSRFToken"] = self._xsrf
        try:
            response = self.session.request(
                method, self.url + path, headers=headers, timeout=self.timeout, **kwargs
            )
        except requests.ConnectionError as exc:
            raise MitmwebUnavailable(f"mitmweb at {self.url} is not reachable") from exc
        except requests.Timeout as exc:
            raise MitmwebUnavailable(f"mitmweb at {self.url} did not answer in time") from exc
        if response.status_code in (401, 403):
            if not self.token:
                raise MitmwebAuthError(f"mitmweb at {self.url} requires a token", hint=AUTH_HINT)
            raise MitmwebAuthError(f"mitmweb at {self.url} refused the token", hint=AUTH_HINT)
        return response

    def flows(self) -> list[dict[str, Any]]:
        response = self._call("GET", "/flows")
        if response.status_code != 200:
            raise MitmwebUnavailable(f"GET /flows answered {response.status_code}")
        try:
            data = response.json()
        except ValueError as exc:
            raise MitmwebUnavailable("GET /flows did not return JSON (is this mitmweb?)") from exc
        if not isinstance(data, list):
            raise MitmwebUnavailable("GET /flows did not return a list (is this mitmweb?)")
        return [f for f in data if isinstance(f, dict)]

    def content(self, flow_id: str, message: str) -> bytes:
        response = self._call("GET", f"/flows/{flow_id}/{message}/content.data")
        if response.status_code == 404:
            raise FlowGone(f"flow {flow_id} is gone")
        if response.status_code != 200:
            raise BodyMissing(
                f"flow {flow_id} has no stored {message} body "
                f"(mitmweb answered {response.status_code})"
            )
        return response.content

    def delete(self, flow_ids: list[str]) -> int:
        """Remove flows; returns how many mitmweb deleted (a 404 means already gone)."""
        done = 0
        for flow_id in flow_ids:
            response = self._call("DELETE", f"/flows/{flow_id}")
            done += response.status_code == 200
        return done

    def options(self) -> dict[str, Any]:
        response = self._call("GET", "/options")
        return response.json() if response.status_code == 200 else {}


# A response that ended with no stored body is final only after this long: a streamed
# body kept by store_streamed_bodies may be attached a moment after the stream ends.
UNSTORED_GRACE = 3.0


def is_complete(flow: dict[str, Any], now: float | None = None) -> bool:
    """Finished: the response ended with a known length, or it failed, or it ended long
    enough ago that a missing body will not appear any more (streamed, not stored)."""
    if flow.get("error"):
        return True
    response = flow.get("response")
    if not isinstance(response, dict) or response.get("timestamp_end") is None:
        return False
    if response.get("contentLength") is not None:
        return True
    now = time.time() if now is None else now
    return now - float(response["timestamp_end"]) >= UNSTORED_GRACE


def body_not_stored(flow: dict[str, Any]) -> bool:
    """A response that ended but whose body mitmweb kept no copy of (streamed unstored)."""
    response = flow.get("response")
    return bool(
        isinstance(response, dict)
        and response.get("timestamp_end") is not None
        and response.get("contentLength") is None
    )


def _headers(message: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for pair in message.get("headers") or ():
        if isinstance(pair, (list, tuple)) and len(pair) == 2:
            out.append((str(pair[0]), str(pair[1])))
    return out


def raw_request(flow: dict[str, Any], body: bytes | None) -> RawRequest:
    req = flow.get("request") or {}
    return RawRequest(
        headers=_headers(req),
        body=body,
        timestamp_start=req.get("timestamp_start"),
        timestamp_end=req.get("timestamp_end"),
        method=str(req.get("method", "POST")),
        scheme=str(req.get("scheme", "https")),
        host=str(req.get("pretty_host") or req.get("host") or ""),
        port=req.get("port"),
        path=str(req.get("path", "/")),
    )


def raw_response(flow: dict[str, Any], body: bytes | None) -> RawResponse | None:
    resp = flow.get("response")
    if not isinstance(resp, dict):
        return None
    return RawResponse(
        headers=_headers(resp),
        body=body,
        timestamp_start=resp.get("timestamp_start"),
        timestamp_end=resp.get("timestamp_end"),
        status_code=int(resp.get("status_code") or 0),
    )
