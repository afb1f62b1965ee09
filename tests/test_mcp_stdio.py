"""`engram mcp` over stdio, driven by the official MCP SDK's client (a real subprocess)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from engram.store import schema
from tests.conftest import Cli
from tests.support.mcp_client import error_text, payload, stdio_session

pytestmark = pytest.mark.anyio

TOOLS = {
    "memory_search",
    "memory_add",
    "memory_supersede",
    "memory_forget",
    "memory_recent",
    "memory_explain",
}
# Looks like a real key (the redactor's job is to notice); it is not one.
FAKE_KEY = "sk-ant-api03-" + "Xq7vN2pL9sK4mR8tW1yZ3bC6dF0gH5jQ" * 3 + "AA"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    project = tmp_path / "shop"
    (project / ".git").mkdir(parents=True)
    return project


def events(db: Path, memory_id: str) -> list[dict[str, Any]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute(
            "SELECT action, actor, detail FROM events WHERE memory_id = ? ORDER BY id",
            (memory_id,),
        )
        return [dict(r) for r in rows]
    finally:
        conn.close()


def memory_row(db: Path, memory_id: str) -> dict[str, Any]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return dict(conn.execute("SELECT * FROM memories WHERE id = ?", (memory_id,)).fetchone())
    finally:
        conn.close()


async def test_tools_search_add_correct_and_explain(cli: Cli, db_path: Path, shop: Path) -> None:
    known = cli("add", "--scope", "global", "The user prefers pytest over unittest").stdout.strip()
    async with stdio_session(db_path, cwd=shop.parent, roots=[shop], client_name="tester") as s:
        listed = await s.list_tools()
        assert {t.name for t in listed.tools} == TOOLS
        for tool in listed.tools:
            assert tool.description and len(tool.description) > 80, tool.name
        add_schema = next(t for t in listed.tools if t.name == "memory_add").inputSchema
        assert set(add_schema["properties"]) == {"content", "kind", "scope"}
        assert add_schema["required"] == ["content"]
        kinds = json.dumps(add_schema["properties"]["kind"])
        assert all(f'"{kind}"' in kinds for kind in schema.KINDS)

        added = payload(
            await s.call_tool(
                "memory_add",
                {"content": "Releases are cut with make release, never by pushing tags"},
            )
        )
        assert added["created"] is True
        new_id = added["id"]
        assert added["memory"]["scope"] == str(shop)  # the client's root is the project
        assert added["memory"]["source"] == "mcp:tester"
        assert [e["action"] for e in events(db_path, new_id)] == ["add"]
        assert events(db_path, new_id)[0]["actor"] == "mcp:tester"

        again = payload(
            await s.call_tool(
                "memory_add",
                {"content": "Releases are cut with make release, never by pushing tags"},
            )
        )
        assert (again["created"], again["id"]) == (False, new_id)

        found = payload(await s.call_tool("memory_search", {"query": "how are releases cut"}))
        assert found["project"] == str(shop)
        first = found["memories"][0]
        assert first["id"] == new_id
        assert {"id", "content", "kind", "scope", "score", "created_at", "updated_at"} <= set(first)
        assert first["use_count"] == 0
        prefs = payload(await s.call_tool("memory_search", {"query": "pytest or unittest"}))
        assert known in [m["id"] for m in prefs["memories"]]  # global memories too
        only_global = payload(
            await s.call_tool(
                "memory_search", {"query": "releases make release", "scope": "global"}
            )
        )
        assert new_id not in [m["id"] for m in only_global["memories"]]

        recent = payload(await s.call_tool("memory_recent", {"limit": 5}))
        assert [m["id"] for m in recent["memories"]][:2] == [new_id, known]

        explained = payload(
            await s.call_tool("memory_explain", {"query": "how do we cut releases with make"})
        )
        assert explained["project"] == str(shop)
        assert isinstance(explained["injected"], bool) and explained["reason"]
        assert new_id in [c["id"] for c in explained["candidates"]]

        resource = await s.read_resource("engram://project/memories")  # type: ignore[arg-type]
        markdown = resource.contents[0].text  # type: ignore[union-attr]
        assert "make release" in markdown and "pytest" in markdown

        fixed = payload(
            await s.call_tool(
                "memory_supersede",
                {"id": new_id, "content": "Releases are cut by CI when a tag is pushed"},
            )
        )
        assert fixed["superseded"] == new_id and fixed["id"] != new_id
        assert memory_row(db_path, new_id)["status"] == "superseded"
        assert memory_row(db_path, fixed["id"])["source"] == "mcp:tester"
        assert events(db_path, new_id)[-1]["actor"] == "mcp:tester"

        gone = payload(
            await s.call_tool("memory_forget", {"id": fixed["id"], "reason": "we moved to CI"})
        )
        assert gone["status"] == "forgotten"
        last = events(db_path, fixed["id"])[-1]
        assert (last["action"], last["actor"]) == ("forget", "mcp:tester")
        assert "we moved to CI" in last["detail"]
        after = payload(await s.call_tool("memory_search", {"query": "releases tag CI"}))
        assert fixed["id"] not in [m["id"] for m in after["memories"]]


async def test_tool_errors_are_clear_and_change_nothing(
    cli: Cli, db_path: Path, shop: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    (other / ".git").mkdir(parents=True)
    theirs = cli("add", "--scope", str(other), "Other project's deploy target is fly.io")
    their_id = theirs.stdout.strip()
    async with stdio_session(db_path, cwd=shop, roots=[shop]) as s:
        for tool, args in [
            ("memory_forget", {"id": "m-zzzzzzzz"}),
            ("memory_supersede", {"id": "m-zzzzzzzz", "content": "x"}),
        ]:
            result = await s.call_tool(tool, args)
            assert result.isError and "no memory with id m-zzzzzzzz" in error_text(result)

        for tool, args in [
            ("memory_forget", {"id": their_id}),
            ("memory_supersede", {"id": their_id, "content": "deploys go to render.com"}),
        ]:
            result = await s.call_tool(tool, args)
            assert result.isError and "another project" in error_text(result)
            assert "fly.io" not in error_text(result) and str(other) not in error_text(result)
        assert memory_row(db_path, their_id)["status"] == "active"
        assert [e["action"] for e in events(db_path, their_id)] == ["add"]
        # Nor can a search reach it.
        found = payload(await s.call_tool("memory_search", {"query": "deploy target fly.io"}))
        assert their_id not in [m["id"] for m in found["memories"]]

        empty = await s.call_tool("memory_add", {"content": "   "})
        assert empty.isError and "empty" in error_text(empty)
        bad_kind = await s.call_tool("memory_add", {"content": "x y z", "kind": "rumour"})
        assert bad_kind.isError
        too_many = await s.call_tool("memory_search", {"query": "x", "limit": 500})
        assert too_many.isError and "limit" in error_text(too_many)
        blank = await s.call_tool("memory_search", {"query": ""})
        assert blank.isError and "empty" in error_text(blank)

        secret = payload(
            await s.call_tool(
                "memory_add", {"content": f"The staging deploy uses ANTHROPIC_API_KEY={FAKE_KEY}"}
            )
        )
        assert secret["created"] and secret["redacted"]
        stored = memory_row(db_path, secret["id"])["content"]
        assert FAKE_KEY not in stored and "[REDACTED" in stored
        assert FAKE_KEY not in str(events(db_path, secret["id"]))

    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("SELECT count(*) FROM memories").fetchone()[0] == 2
    finally:
        conn.close()


async def test_project_without_roots_is_the_servers_git_tree(db_path: Path, shop: Path) -> None:
    sub = shop / "src"
    sub.mkdir()
    async with stdio_session(db_path, cwd=sub, roots=None) as s:
        added = payload(await s.call_tool("memory_add", {"content": "src holds the app code"}))
        assert added["memory"]["scope"] == str(shop)


async def test_project_follows_the_clients_roots(db_path: Path, shop: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    roots = [shop]
    async with stdio_session(db_path, cwd=tmp_path, roots=roots) as s:
        first = payload(await s.call_tool("memory_add", {"content": "Shop uses Postgres 16"}))
        assert first["memory"]["scope"] == str(shop)
        roots[:] = [other]
        await s.send_roots_list_changed()
        second = payload(await s.call_tool("memory_add", {"content": "Other uses SQLite"}))
        assert second["memory"]["scope"] == str(other)
        mine = payload(await s.call_tool("memory_recent", {}))
        assert [m["content"] for m in mine["memories"]] == ["Other uses SQLite"]
