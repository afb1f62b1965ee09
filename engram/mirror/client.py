"""A small MuninnDB MCP client: JSON-RPC `tools/call` over `POST /mcp`.

Shapes follow docs in /work/shared/reference/muninndb.md (the real server is the judge):
every tool result arrives double-encoded (`result.content[0].text` is JSON again),
failures are JSON-RPC errors (-32602 invalid params, -32000 tool error), a bad token is
HTTP 401. Errors are sorted into four classes because the sync job reacts to each
differently:

- `MuninnUnavailable`: not reached, timed out, 5xx. Nothing is known to have happened;
  retry later with backoff, drop nothing.
- `MuninnAuthError`: 401/403. Retrying cannot help until the user fixes the token.
- `MuninnToolError`: the server understood and refused this one call (its message is
  kept); the operation is marked failed, other operations carry on.
- `MuninnProtocolError`: an answer we cannot read (not JSON, wrong envelope). Retried a
  few times, then marked failed.

Invariant 2 of ARCHITECTURE.md: the session ignores proxy environment variables
(`trust_env=False`) and marks every request `X-Engram-Internal: 1`, so engram never
captures its own traffic.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

import requests

from engram.errors import EngramError
from engram.wire.markers import INTERNAL_HEADERS

TOKEN_HELP = "set MUNINN_TOKEN or put MuninnDB's token in ~/.muninn/mcp.token"
MAX_BODY = 1_000_000  # MuninnDB refuses request bodies over 1 MiB; stay clear of it


class MuninnError(EngramError):
    pass


class MuninnUnavailable(MuninnError):
    pass


class MuninnAuthError(MuninnError):
    pass


class MuninnProtocolError(MuninnError):
    pass


class MuninnToolError(MuninnError):
    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code

    @property
    def not_found(self) -> bool:
        return "not found" in self.message.lower()


@dataclass(frozen=True, slots=True)
class Remembered:
    """One `muninn_remember` (or batch item) outcome."""

    id: str | None
    hint: str | None = None
    idempotent: bool = False
    error: str | None = None  # a batch item the server refused (`status: "error"`)


def encode(payload: Any) -> bytes:
    """UTF-8 JSON without \\u escapes: the size we measure is the size we send."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class MuninnClient:
    """Synchronous and thread-safe enough for a few parallel recall calls (requests'
    connection pool is); one instance per process is plenty."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 10.0,
        connect_timeout: float = 3.0,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._ids = itertools.count(1)
        self.session = requests.Session()
        self.session.trust_env = False  # never through HTTP(S)_PROXY: no self-capture
        self.session.headers.update(
            {
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": "engram-mirror",
                **INTERNAL_HEADERS,
            }
        )
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> MuninnClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport -------------------------------------------------------------------

    def rpc(
        self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> Any:
        """One JSON-RPC call; returns `result` or raises one of the error classes."""
        rid = next(self._ids)
        body = encode(
            {
                "jsonrpc": "2.0",
                "id": rid,
                "method": method,
                **({"params": params} if params is not None else {}),
            }
        )
        if len(body) > MAX_BODY:
            raise MuninnToolError(f"request of {len(body)} bytes is over MuninnDB's 1 MiB limit")
        read = self.timeout if timeout is None else timeout
        try:
            resp = self.session.post(
                self.url, data=body, timeout=(min(self.connect_timeout, read), read)
            )
        except requests.Timeout:
            raise MuninnUnavailable(
                f"MuninnDB at {self.url} did not answer within {read:g} s"
            ) from None
        except requests.RequestException as exc:
            raise MuninnUnavailable(
                f"MuninnDB at {self.url} is unreachable ({type(exc).__name__})"
            ) from None
        if resp.status_code in (401, 403):
            raise MuninnAuthError(
                f"MuninnDB rejected the token (HTTP {resp.status_code})", hint=TOKEN_HELP
            )
        if resp.status_code >= 500 or resp.status_code in (408, 429):
            raise MuninnUnavailable(f"MuninnDB answered HTTP {resp.status_code}")
        try:
            data = resp.json()
        except ValueError:
            raise MuninnProtocolError(
                f"MuninnDB answered HTTP {resp.status_code} with non-JSON: {resp.text[:120]!r}"
            ) from None
        if not isinstance(data, dict):
            raise MuninnProtocolError(f"unexpected JSON-RPC answer: {str(data)[:120]}")
        error = data.get("error")
        if error is not None:
            if not isinstance(error, dict):
                raise MuninnProtocolError(f"malformed JSON-RPC error: {str(error)[:120]}")
            code, message = error.get("code"), str(error.get("message", ""))
            if code == -32001:
                raise MuninnAuthError(f"MuninnDB refused the call: {message}", hint=TOKEN_HELP)
            raise MuninnToolError(
                f"MuninnDB error {code}: {message}", code if isinstance(code, int) else None
            )
        if resp.status_code != 200:
            raise MuninnProtocolError(f"MuninnDB answered HTTP {resp.status_code}")
        if "result" not in data or data.get("id") != rid:
            raise MuninnProtocolError("JSON-RPC answer without a result for our request id")
        return data["result"]

    def call(
        self, tool: str, arguments: dict[str, Any], *, timeout: float | None = None
    ) -> dict[str, Any]:
        """`tools/call` and decode the double-encoded envelope into a dict."""
        result = self.rpc("tools/call", {"name": tool, "arguments": arguments}, timeout=timeout)
        return decode_envelope(tool, result)

    # -- tools -----------------------------------------------------------------------

    def remember(self, vault: str, item: dict[str, Any], op_id: str | None = None) -> Remembered:
        args = {"vault": vault, **item, **({"op_id": op_id} if op_id else {})}
        data = self.call("muninn_remember", args)
        return Remembered(_id(data), _opt_str(data.get("hint")), data.get("idempotent") is True)

    def remember_batch(self, vault: str, items: list[dict[str, Any]]) -> list[Remembered]:
        """1..50 items without op_id; per-item refusals come back as `error`."""
        data = self.call("muninn_remember_batch", {"vault": vault, "memories": items})
        results = data.get("results")
        if not isinstance(results, list):
            raise MuninnProtocolError("muninn_remember_batch answer has no results list")
        out: list[Remembered | None] = [None] * len(items)
        for pos, r in enumerate(results):
            if not isinstance(r, dict):
                raise MuninnProtocolError("muninn_remember_batch result is not an object")
            index = r.get("index", pos)
            if not isinstance(index, int) or not 0 <= index < len(items):
                raise MuninnProtocolError(f"muninn_remember_batch index {index!r} out of range")
            if r.get("status") == "error":
                out[index] = Remembered(None, error=str(r.get("error") or "unknown error"))
            else:
                out[index] = Remembered(_id(r), _opt_str(r.get("hint")))
        if any(r is None for r in out):
            raise MuninnProtocolError(
                f"muninn_remember_batch answered {len(results)} of {len(items)} items"
            )
        return [r for r in out if r is not None]

    def forget(self, vault: str, muninn_id: str) -> None:
        self.call("muninn_forget", {"vault": vault, "id": muninn_id})

    def restore(self, vault: str, muninn_id: str) -> str:
        data = self.call("muninn_restore", {"vault": vault, "id": muninn_id})
        return _opt_str(data.get("id")) or muninn_id

    def link(self, vault: str, source_id: str, target_id: str, relation: str) -> None:
        self.call(
            "muninn_link",
            {"vault": vault, "source_id": source_id, "target_id": target_id, "relation": relation},
        )

    def read(self, vault: str, muninn_id: str) -> dict[str, Any]:
        return self.call("muninn_read", {"vault": vault, "id": muninn_id})

    def recall(
        self,
        vault: str,
        context: str | list[str],
        *,
        threshold: float,
        limit: int,
        timeout: float | None = None,
        **extra: Any,
    ) -> list[dict[str, Any]]:
        """Matches, best first; `memories: null` (nothing matched) becomes []."""
        args = {
            "vault": vault,
            "context": context,
            "threshold": threshold,
            "limit": max(1, min(100, limit)),
            **extra,
        }
        data = self.call("muninn_recall", args, timeout=timeout)
        memories = data.get("memories")
        if memories is None:
            return []
        if not isinstance(memories, list):
            raise MuninnProtocolError("muninn_recall answer: memories is not a list")
        return [m for m in memories if isinstance(m, dict) and isinstance(m.get("id"), str)]

    def ping(self, timeout: float | None = None) -> None:
        """Reachable and authorized (JSON-RPC `ping` passes MuninnDB's auth check)."""
        self.rpc("ping", {}, timeout=timeout)


def decode_envelope(tool: str, result: Any) -> dict[str, Any]:
    """`{"content":[{"type":"text","text":"<JSON>"}]}` -> the inner JSON object."""
    if not isinstance(result, dict) or not isinstance(result.get("content"), list):
        raise MuninnProtocolError(f"{tool}: result has no content list")
    texts = [
        c.get("text") for c in result["content"] if isinstance(c, dict) and c.get("type") == "text"
    ]
    if not texts or not isinstance(texts[0], str):
        raise MuninnProtocolError(f"{tool}: result has no text content")
    if result.get("isError") is True:
        raise MuninnToolError(f"{tool}: {texts[0][:300]}")
    try:
        inner = json.loads(texts[0])
    except ValueError:
        raise MuninnProtocolError(f"{tool}: result text is not JSON: {texts[0][:120]!r}") from None
    if not isinstance(inner, dict):
        raise MuninnProtocolError(f"{tool}: result text is not a JSON object")
    return inner


def _id(data: dict[str, Any]) -> str:
    value = data.get("id")
    if not isinstance(value, str) or not value:
        raise MuninnProtocolError(f"answer without a memory id: {str(data)[:120]}")
    return value


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
