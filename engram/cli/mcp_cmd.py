"""`engram mcp`: serve the agent's memory over MCP (stdio, or streamable HTTP on loopback).

The SDK is imported inside the command only: `mcp` with pydantic and starlette costs
~300 ms, the whole cold-start budget of `engram list`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from engram.cli.base import app
from engram.cli.context import state
from engram.errors import ConfigError, EngramError

if TYPE_CHECKING:
    import socket


def loopback_socket(listen: str) -> socket.socket:
    """A listening socket on HOST:PORT (port 0: a free one); anything but loopback is
    refused: the server hands out the user's memory to whoever holds the token."""
    import socket

    from engram.cli.proxy_cmd import parse_listen
    from engram.net import is_loopback

    host, port = parse_listen(listen, "--http")
    if not is_loopback(host):
        raise ConfigError(
            f"--http must bind a loopback address (127.0.0.1, ::1 or localhost), not {host!r}",
            hint="engram mcp serves your memory; use an SSH tunnel to reach it from elsewhere",
        )
    try:
        return socket.create_server(
            (host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET
        )
    except OSError as exc:
        raise EngramError(f"cannot listen on {listen}: {exc.strerror or exc}") from None


@app.command("mcp")
def mcp_(
    ctx: typer.Context,
    http: str | None = typer.Option(
        None,
        "--http",
        metavar="HOST:PORT",
        help="Serve streamable HTTP at http://HOST:PORT/mcp instead of stdio (loopback "
        "only; clients send `Authorization: Bearer TOKEN`, TOKEN from mcp.token or "
        "printed at start).",
    ),
    project: Path | None = typer.Option(
        None,
        "--project",
        "-p",
        help="The project when the client offers no roots and the server's directory "
        "is not a git work tree.",
    ),
    budget: int = typer.Option(
        4000,
        "--budget",
        min=100,
        max=100_000,
        help="Token budget of the engram://project/memories resource.",
    ),
) -> None:
    """Serve engram's memory to an agent over MCP: tools memory_search, memory_add,
    memory_supersede, memory_forget, memory_recent and memory_explain, and the
    resource engram://project/memories. Stdio by default (what agents start from their
    config; see docs/mcp.md, or `engram hooks install claude --mcp`)."""
    from engram.mcp.memory import MemoryTools

    st = state(ctx)
    st.store.ensure()  # a broken database fails here, as one line
    tools = MemoryTools(st.store, st.config, st.runtime.recaller())
    sock = loopback_socket(http) if http is not None else None
    from engram.mcp import server  # the SDK: ~0.5 s, before the model starts loading

    if sock is None:
        app_ = server.build(tools, cwd=Path.cwd(), project_flag=project, budget=budget)
        tools.warm(background=True)
        try:
            server.run_stdio(app_)
        finally:
            tools.recaller.stop_background()  # no thread left inside onnxruntime at exit
        return
    host, port = sock.getsockname()[:2]
    import secrets

    token = st.config.mcp.token or secrets.token_urlsafe(32)
    app_ = server.build(
        tools, cwd=Path.cwd(), project_flag=project, budget=budget, http=(host, port, token)
    )
    url_host = f"[{host}]" if ":" in host else host
    sys.stderr.write(f"engram mcp: serving http://{url_host}:{port}/mcp\n")
    if not st.config.mcp.token:
        sys.stderr.write(
            f"engram mcp: bearer token {token}\n"
            "  (a new one at every start; set mcp.token or ENGRAM_MCP_TOKEN to keep one)\n"
        )
    sys.stderr.flush()
    tools.warm(background=True)
    try:
        server.run_http(app_, sock)
    finally:
        sock.close()
        tools.recaller.stop_background()  # no thread left inside onnxruntime at exit
