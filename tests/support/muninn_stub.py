"""A loopback stand-in for MuninnDB's MCP endpoint, for tests and demos.

The real server cannot be installed here, so this one speaks its protocol as documented
in /work/shared/reference/muninndb.md: `POST /mcp` JSON-RPC 2.0, tool results in the
double-encoded envelope (`result.content[0].text` is JSON), 401 with
`{"code":-32001,"message":"unauthorized"}`, -32602 for invalid params, vault names and
unknown tools, -32000 `tool error: ...`, -32700 for JSON-RPC batch arrays and bodies over
1 MiB (HTTP 413), 202 for notifications, `GET /mcp/health`. What the tools do is in
`muninn_engine` (de-duplication, op_id receipts, batches, limits, soft delete, recall).

It serves from a thread on 127.0.0.1 (a free port unless given) with `http.server`, and
keeps its data across `stop()`/`start()` on the same port, like a server restarted on
its durable store; `stop()` also cuts open keep-alive connections, so "down" is down.
Test knobs: `token`, `latency` (seconds between applying a tool call and answering it),
`fault` (a function of (tool, arguments) returning a `Fault` or None), `max_content`,
`index_delay`, `purge()`.
`assert_mirrored` checks the end state every mirror test wants: MuninnDB holds exactly
the local active memories, once each.
"""

from __future__ import annotations

import collections
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from tests.support.muninn_engine import TOOLS, VAULT_RULE, MuninnEngine, StubMemory, ToolError

if TYPE_CHECKING:
    from engram.store.db import Store

__all__ = ["Fault", "MuninnStub", "StubMemory", "assert_mirrored", "running_stub"]


@dataclass(frozen=True)
class Fault:
    """What to do instead of answering one tool call normally."""

    rpc_error: tuple[int, str] | None = None  # a JSON-RPC error answer
    status: int = 200  # with `body`: a raw HTTP answer
    body: bytes | None = None
    drop: bool = False  # close the connection without answering
    after: bool = False  # apply the call first: the write happens, the answer is lost


class MuninnStub(MuninnEngine):
    def __init__(
        self,
        *,
        token: str | None = None,
        port: int = 0,
        latency: float = 0.0,
        index_delay: float = 0.08,
        max_content: int = 16384,
    ) -> None:
        super().__init__(index_delay=index_delay, max_content=max_content)
        self.host = "127.0.0.1"
        self.port = port
        self.token = token
        self.latency = latency
        self.max_body = 1 << 20
        self.fault: Callable[[str, dict[str, Any]], Fault | None] | None = None
        self.headers: collections.deque[dict[str, str]] = collections.deque(maxlen=50)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/mcp"

    def start(self) -> MuninnStub:
        if self._server is not None:
            raise RuntimeError("MuninnStub already running")
        server = _Server((self.host, self.port), _handler_for(self))
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"muninn-stub:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Go down: stop listening and cut open keep-alive connections (data is kept)."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self.lock:
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self) -> MuninnStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], OSError):  # a client that hung up is normal
            super().handle_error(request, client_address)


def _handler_for(stub: MuninnStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes: without this, Nagle plus delayed ACKs
            # add ~40 ms to every answer.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with stub.lock:
                stub._conns.add(self.connection)

        def finish(self) -> None:
            with contextlib.suppress(OSError):
                super().finish()
            with stub.lock:
                stub._conns.discard(self.connection)

        def send(self, status: int, body: bytes | dict[str, Any] | None) -> None:
            data = json.dumps(body).encode() if isinstance(body, dict) else body or b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/mcp/health":
                self.send(200, {"status": "ok"})
            else:
                self.send(404, {"error": "not found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > stub.max_body:
                self.close_connection = True
                self.send(
                    413,
                    {
                        "jsonrpc": "2.0",
                        "error": {"code": -32700, "message": "request body too large"},
                    },
                )
                return
            raw = self.rfile.read(length)
            stub.headers.append(dict(self.headers.items()))
            if self.path != "/mcp":
                self.send(404, {"error": "not found"})
                return
            if stub.token and self.headers.get("Authorization") != f"Bearer {stub.token}":
                self.send(
                    401, {"jsonrpc": "2.0", "error": {"code": -32001, "message": "unauthorized"}}
                )
                return
            self.rpc(raw)

        def rpc(self, raw: bytes) -> None:
            try:
                req = json.loads(raw)
            except ValueError:
                req = None
            if not isinstance(req, dict):  # batch arrays are not supported either
                self.send(
                    200,
                    {
                        "jsonrpc": "2.0",
                        "id": None,
                        "error": {"code": -32700, "message": "parse error"},
                    },
                )
                return
            rid, method = req.get("id"), req.get("method")

            def error(code: int, message: str) -> None:
                self.send(
                    200, {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}
                )

            if req.get("jsonrpc") != "2.0":
                return error(-32600, "invalid request: jsonrpc must be '2.0'")
            if isinstance(method, str) and method.startswith("notifications/"):
                return self.send(202, None)
            if method == "initialize":
                result: Any = {
                    "protocolVersion": "2024-11-05",
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "muninn", "version": "stub"},
                }
            elif method == "ping":
                result = {}
            elif method == "tools/list":
                result = {"tools": [{"name": t} for t in TOOLS]}
            elif method == "tools/call":
                params = req.get("params")
                if not isinstance(params, dict):
                    return error(-32602, "invalid params: params required")
                try:
                    result = self.call(str(params.get("name")), params.get("arguments") or {})
                except ToolError as exc:
                    return error(exc.code, exc.args[0])
                if result is None:
                    return None
            else:
                return error(-32601, f"method not found: {method}")
            self.send(200, {"jsonrpc": "2.0", "id": rid, "result": result})
            return None

        def call(self, name: str, args: dict[str, Any]) -> Any:
            vault = args.get("vault") or "default"
            if not isinstance(vault, str) or not VAULT_RULE.fullmatch(vault):
                raise ToolError(
                    -32602,
                    "invalid params: invalid vault name: must be 1-64 "
                    "lowercase alphanumeric, hyphen, or underscore characters",
                )
            fault = stub.fault(name, args) if stub.fault is not None else None
            with stub.lock:
                stub.calls[name] += 1
                if fault is None or fault.after:
                    inner = stub.tool(name, vault, args)
            if stub.latency:  # after the write: a client killed meanwhile never hears of it
                time.sleep(stub.latency)
            if fault is not None:
                if fault.drop:
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return None
                if fault.rpc_error is not None:
                    raise ToolError(*fault.rpc_error)
                self.close_connection = fault.status >= 400
                self.send(fault.status, fault.body)
                return None
            text = json.dumps(inner, ensure_ascii=False)
            return {"content": [{"type": "text", "text": text}]}

    return Handler


@contextlib.contextmanager
def running_stub(**kw: Any) -> Iterator[MuninnStub]:
    stub = MuninnStub(**kw).start()
    try:
        yield stub
    finally:
        stub.stop()


def local_active(
    store: Store, vault: str | None = None, global_vault: str = "engram-global"
) -> collections.Counter[tuple[str, str]]:
    """(vault, content) of every active local memory, as the mirror maps them."""
    from engram.mirror.vault import vault_for_scope

    with store.read() as conn:
        rows = conn.execute("SELECT scope, content FROM memories WHERE status = 'active'")
        return collections.Counter(
            (vault_for_scope(scope, vault, global_vault), content) for scope, content in rows
        )


def assert_mirrored(store: Store, stub: MuninnEngine, **vaults: Any) -> None:
    """MuninnDB holds exactly the local active memories, once each."""
    remote = collections.Counter((m.vault, m.content) for m in stub.active())
    doubles = {k: n for k, n in remote.items() if n > 1}
    assert not doubles, f"MuninnDB holds duplicates: {list(doubles)[:5]}"
    local = local_active(store, **vaults)
    missing, extra = local - remote, remote - local
    assert not missing and not extra, (
        f"{len(missing)} local memories missing from MuninnDB (e.g. {list(missing)[:3]}), "
        f"{len(extra)} extra in MuninnDB (e.g. {list(extra)[:3]})"
    )


def main() -> None:  # `python -m tests.support.muninn_stub [PORT]`: for manual trials
    import sys

    stub = MuninnStub(port=int(sys.argv[1]) if len(sys.argv) > 1 else 8750).start()
    print(stub.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        stub.stop()


if __name__ == "__main__":
    main()
