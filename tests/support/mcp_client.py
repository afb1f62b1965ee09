"""Driving `engram mcp` with the official `mcp` SDK's own client, as an agent would.

    async with stdio_session(db, cwd=project, roots=[project]) as session:
        result = await session.call_tool("memory_search", {"query": "deploy"})
        payload(result)   # the tool's JSON answer as a dict

The server runs as a real subprocess (`python -m engram --db DB mcp`) with the test's
environment (isolated HOME); the SDK's client kills it when the block exits.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp.shared.context import RequestContext


def server_command(db: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "engram", "--db", str(db), "mcp", *args]


@asynccontextmanager
async def stdio_session(
    db: Path,
    *,
    cwd: Path,
    roots: Sequence[Path] | None = None,
    client_name: str = "engram-tests",
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> AsyncIterator[ClientSession]:
    """An initialized session; `roots` (None: the client offers no roots capability)."""
    command = server_command(db, *args)
    params = StdioServerParameters(
        command=command[0], args=command[1:], cwd=str(cwd), env={**os.environ, **(env or {})}
    )

    async def list_roots(
        context: RequestContext[ClientSession, Any],
    ) -> types.ListRootsResult | types.ErrorData:
        return types.ListRootsResult(
            roots=[types.Root(uri=Path(r).as_uri(), name=Path(r).name) for r in roots or ()]  # type: ignore[arg-type]
        )

    async with (
        stdio_client(params) as (read, write),
        ClientSession(
            read,
            write,
            list_roots_callback=list_roots if roots is not None else None,
            client_info=types.Implementation(name=client_name, version="1.0"),
        ) as session,
    ):
        await session.initialize()
        yield session


def payload(result: types.CallToolResult) -> dict[str, Any]:
    """A successful tool call's JSON answer."""
    assert not result.isError, f"tool failed: {error_text(result)}"
    if isinstance(result.structuredContent, dict):
        return result.structuredContent
    return json.loads(error_text(result))


def error_text(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))
