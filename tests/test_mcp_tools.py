"""The MCP server's rules in-process: project resolution, sharing the database with a
writer, registration with Claude Code by file, and the cold start of other commands."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from engram.config import Config
from engram.errors import EngramError
from engram.mcp import project
from engram.mcp.memory import Caller, MemoryTools, client_label
from engram.store.db import Store
from tests.conftest import Cli
from tests.support.wait import wait_until


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    (path / ".git").mkdir(parents=True)
    (path / "pkg").mkdir()
    return path


def test_project_comes_from_roots_then_git_cwd_then_flag(repo: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    flag = tmp_path / "flagged"
    # The client's first file root wins (normalised to its git work tree).
    roots = ["https://example.com/x", (repo / "pkg").as_uri()]
    assert project.resolve(roots, plain, flag) == str(repo)
    # No usable roots: the server's directory when it is in a git work tree...
    assert project.resolve([], repo / "pkg", flag) == str(repo)
    # ...else --project...
    assert project.resolve(None, plain, flag) == str(flag)
    # ...else the directory itself, but never / or the home directory.
    assert project.resolve(None, plain, None) == str(plain)
    assert project.resolve(None, Path("/"), None) is None
    assert project.resolve(None, Path.home(), None) is None
    assert project.root_path("file:///srv/my%20app") == Path("/srv/my app")
    assert project.root_path("file://otherhost/srv") is None


def test_client_names_are_safe_actor_labels() -> None:
    assert client_label("claude-code") == "claude-code"
    assert client_label("Cursor (1.2) \n; DROP") == "Cursor-1.2-DROP"
    assert client_label(None) == client_label("") == "unknown"
    assert len(client_label("x" * 500)) == 64


def test_reads_never_wait_for_another_process_holding_the_write_lock(
    cli: Cli, db_path: Path, repo: Path
) -> None:
    cli("add", "--scope", str(repo), "The API is served by gunicorn behind nginx")
    tools = MemoryTools(Store(db_path, 30_000), Config())  # a writer would wait 30 s
    tools.warm(background=False)
    # Another process adds a memory the index has not seen (its vector is not stored)...
    cli("add", "--scope", str(repo), "Gunicorn runs four workers per core")
    me = Caller("tester", str(repo))
    writer = sqlite3.connect(db_path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # ...and the proxy or watcher is mid-write.
        answers: list[object] = []

        def read_all() -> None:
            answers.append(tools.search(me, "gunicorn workers"))
            answers.append(tools.recent(me))
            answers.append(tools.explain(me, "what serves the API"))
            answers.append(tools.project_markdown(me, 1000))

        reader = threading.Thread(target=read_all, daemon=True)
        reader.start()
        wait_until(lambda: len(answers) == 4, timeout=10, what="reads while locked")
        found = answers[0]["memories"]  # type: ignore[index]
        assert {m["content"] for m in found} >= {"Gunicorn runs four workers per core"}
        assert "gunicorn" in str(answers[3])
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert tools.add(me, "Workers are restarted nightly")["created"]


def test_a_write_waits_for_the_busy_timeout_then_says_locked(
    cli: Cli, db_path: Path, repo: Path
) -> None:
    tools = MemoryTools(Store(db_path, 200), Config())
    tools.store.ensure()
    writer = sqlite3.connect(db_path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        with pytest.raises(EngramError, match="locked"):
            tools.add(Caller("tester", str(repo)), "Workers are restarted nightly")
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_session_without_project_sees_and_writes_global_only(cli: Cli, db_path: Path) -> None:
    cli("add", "--scope", "global", "The user writes commit messages in English")
    tools = MemoryTools(Store(db_path), Config())
    nowhere = Caller("tester", None)
    assert tools.search(nowhere, "commit messages language")["memories"]
    with pytest.raises(EngramError, match="no project"):
        tools.add(nowhere, "Something about a project")
    assert tools.add(nowhere, "The user likes short answers", scope="global")["created"]


def claude_json(home: Path) -> dict:
    return json.loads((home / ".claude.json").read_text())


def test_register_by_file_without_the_claude_cli(
    cli: Cli, repo: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # no `claude`: the documented files
    monkeypatch.chdir(repo)
    (isolated_home / ".claude.json").write_text(json.dumps({"theme": "dark"}))
    os.chmod(isolated_home / ".claude.json", 0o600)

    out = cli("hooks", "install", "claude", "--mcp").stdout
    assert out.startswith("installed: MCP server engram in")
    entry = claude_json(isolated_home)["mcpServers"]["engram"]
    assert entry["type"] == "stdio" and Path(entry["command"]).name == "engram"
    assert entry["args"] == ["--db", str(cli.db.resolve()), "mcp"]
    assert claude_json(isolated_home)["theme"] == "dark"
    assert stat.S_IMODE((isolated_home / ".claude.json").stat().st_mode) == 0o600
    assert cli("hooks", "install", "claude", "--mcp").stdout.startswith("already installed")
    # Not the SessionStart hook: that is `hooks install claude` without --mcp.
    assert not (isolated_home / ".claude" / "settings.json").exists()

    cli("hooks", "install", "claude", "--mcp", "--project")
    shared = json.loads((repo / ".mcp.json").read_text())
    assert shared["mcpServers"]["engram"]["args"][-1] == "mcp"

    assert cli("hooks", "uninstall", "claude", "--mcp").stdout.startswith("removed")
    assert claude_json(isolated_home) == {"theme": "dark"}
    assert cli("hooks", "uninstall", "claude", "--mcp").stdout.startswith("not installed")
    cli("hooks", "uninstall", "claude", "--mcp", "--project")
    assert json.loads((repo / ".mcp.json").read_text()) == {}


def test_register_leaves_someone_elses_engram_server_alone(
    cli: Cli, repo: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.chdir(repo)
    theirs = {"mcpServers": {"engram": {"command": "npx", "args": ["some-other-engram"]}}}
    (isolated_home / ".claude.json").write_text(json.dumps(theirs))
    failed = cli.fail("hooks", "install", "claude", "--mcp")
    assert "not engram's" in failed.stderr
    assert cli("hooks", "uninstall", "claude", "--mcp").stdout.startswith("not installed")
    assert claude_json(isolated_home) == theirs


def test_other_commands_do_not_load_the_sdk() -> None:
    """`engram --help`, `list`, `status` must start in under 300 ms: the SDK with pydantic
    costs more than that alone, so only `engram mcp` may import it."""
    probe = (
        "import sys, engram.cli.app; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('mcp', 'pydantic', 'starlette', 'uvicorn', 'engram') and "
        "(not m.startswith('engram') or m.startswith('engram.mcp'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
