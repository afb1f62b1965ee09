"""`engram mcp --http`: streamable HTTP on loopback, behind a bearer token."""

from __future__ import annotations

import os
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import ENGRAM
from tests.support.expect import call_fails
from tests.support.mcp_client import payload
from tests.support.wait import wait_until

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "curl", "version": "1"},
    },
}
ACCEPT = {"Accept": "application/json, text/event-stream"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Served:
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def find(self, pattern: str) -> str | None:
        for line in self.lines:
            found = re.search(pattern, line)
            if found:
                return found.group(1)
        return None

    @property
    def url(self) -> str:
        # Start-up under a loaded 2-core CI machine (a new database, the SDK import) takes
        # seconds; bounded generously.
        return wait_until(lambda: self.find(r"serving (\S+)"), timeout=60, what="the address")


@pytest.fixture
def serve(db_path: Path, tmp_path: Path) -> Iterator[object]:
    started: list[Served] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Served:
        process = subprocess.Popen(
            [*ENGRAM, "--db", str(db_path), "mcp", *args],
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        served = Served(process)
        started.append(served)

        def pump() -> None:
            assert process.stderr is not None
            for line in process.stderr:
                served.lines.append(line)

        threading.Thread(target=pump, daemon=True).start()
        return served

    yield start
    for served in started:
        served.process.terminate()
        try:
            served.process.wait(10)
        except subprocess.TimeoutExpired:
            served.process.kill()
            served.process.wait(10)


async def _search(url: str, token: str) -> dict[str, object]:
    async with (
        httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
        streamable_http_client(url, http_client=http) as (read, write, _),
        ClientSession(
            read, write, client_info=types.Implementation(name="http-test", version="1")
        ) as session,
    ):
        await session.initialize()
        added = payload(await session.call_tool("memory_add", {"content": "HTTP works too"}))
        assert added["memory"]["source"] == "mcp:http-test"
        return payload(await session.call_tool("memory_search", {"query": "HTTP works"}))


@pytest.mark.anyio
async def test_http_requires_the_printed_token(serve, tmp_path: Path) -> None:
    served = serve("--http", "127.0.0.1:0")
    url = served.url
    token = wait_until(lambda: served.find(r"bearer token (\S+)"), what="the printed token")
    assert url.startswith("http://127.0.0.1:") and url.endswith("/mcp")

    async with httpx.AsyncClient() as http:
        for headers in ({}, {"Authorization": "Bearer " + "x" * len(token)}):
            answer = await http.post(url, json=INIT, headers={**ACCEPT, **headers})
            assert answer.status_code == 401
            assert answer.headers["www-authenticate"].startswith("Bearer")
            assert "mcp-session-id" not in answer.headers
        # A page in the browser cannot reach it either (DNS rebinding: foreign Host).
        foreign = await http.post(
            url,
            json=INIT,
            headers={**ACCEPT, "Authorization": f"Bearer {token}", "Host": "evil.example"},
        )
        assert foreign.status_code in (403, 421)

    found = await _search(url, token)
    assert [m["content"] for m in found["memories"]] == ["HTTP works too"]  # type: ignore[index]

    with call_fails():
        await _search(url, "not-the-token")


@pytest.mark.anyio
async def test_http_uses_the_configured_token_and_does_not_print_it(serve) -> None:
    token = "engram-test-token-9f8e7d6c5b4a"
    served = serve("--http", "127.0.0.1:0", env={"ENGRAM_MCP_TOKEN": token})
    url = served.url
    found = await _search(url, token)
    assert found["memories"]
    assert not any(token in line for line in served.lines)


def test_http_refuses_a_non_loopback_bind(db_path: Path) -> None:
    done = subprocess.run(
        [*ENGRAM, "--db", str(db_path), "mcp", "--http", "0.0.0.0:0"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: --http must bind a loopback address")
    assert len(done.stderr.strip().splitlines()) == 1
