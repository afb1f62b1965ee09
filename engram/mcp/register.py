"""Registering `engram mcp` with Claude Code (`engram hooks install claude --mcp`).

Through Claude Code's own CLI when it is on PATH (`claude mcp add -s user|project`), so
whatever else Claude Code keeps in its files is its business; else by writing the file
that command writes (verified with Claude Code 2.1.332):

- user scope: `~/.claude.json`, top-level `mcpServers`, available in every project;
- project scope: `<project>/.mcp.json`, `mcpServers` (Claude Code asks each user to
  approve a project's servers once).

Both hold `"engram": {"type": "stdio", "command": ..., "args": [...], "env": {}}`.
Idempotent: an entry that is already ours with the same command is left alone, one of
ours with another command (engram moved, other --db) is replaced, and an entry named
engram that is not ours is never touched. `uninstall` removes only an entry of ours.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from engram import jsonfile
from engram.errors import EngramError

SERVER_NAME = "engram"
CLAUDE_TIMEOUT_S = 60.0


def engram_executable() -> str:
    """This installation's engram, by absolute path (agents start servers without our PATH)."""
    exe = Path(sys.executable).parent / "engram"
    return str(exe) if exe.exists() else "engram"


def server_entry(global_args: list[str]) -> dict[str, Any]:
    """What Claude Code runs: `engram [--db X] [--config Y] mcp`."""
    return {
        "type": "stdio",
        "command": engram_executable(),
        "args": [*global_args, "mcp"],
        "env": {},
    }


def config_path(scope: str, project: Path) -> Path:
    return Path.home() / ".claude.json" if scope == "user" else project / ".mcp.json"


def is_ours(entry: Any) -> bool:
    """An `engram ... mcp` stdio entry (whichever engram and database it names)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("command"), str):
        return False
    args = entry.get("args")
    return (
        Path(entry["command"]).name == "engram"
        and isinstance(args, list)
        and bool(args)
        and args[-1] == "mcp"
    )


def _same(entry: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return entry.get("command") == wanted["command"] and entry.get("args") == wanted["args"]


def current(scope: str, project: Path) -> Any:
    servers = jsonfile.read_object(config_path(scope, project)).get("mcpServers")
    return servers.get(SERVER_NAME) if isinstance(servers, dict) else None


def install(scope: str, project: Path, global_args: list[str]) -> str:
    """Register the server; returns "installed", "updated" or "already installed"."""
    wanted = server_entry(global_args)
    existing = current(scope, project)
    if existing is not None and not is_ours(existing):
        raise EngramError(
            f"{config_path(scope, project)} already has an MCP server named "
            f"{SERVER_NAME!r} that is not engram's; not changing it"
        )
    if existing is not None and _same(existing, wanted):
        return "already installed"
    claude = shutil.which("claude")
    if claude:
        if existing is not None:
            _claude(claude, project, "remove", "-s", scope, SERVER_NAME)
        _claude(
            claude,
            project,
            "add",
            "-s",
            scope,
            SERVER_NAME,
            "--",
            wanted["command"],
            *wanted["args"],
        )
    else:
        path = config_path(scope, project)
        data = jsonfile.read_object(path)
        servers = data.setdefault("mcpServers", {})
        if not isinstance(servers, dict):
            raise EngramError(f"{path}: mcpServers is not an object; not changing it")
        servers[SERVER_NAME] = wanted
        jsonfile.write(path, data, 0o600 if scope == "user" else 0o644)
    return "updated" if existing is not None else "installed"


def uninstall(scope: str, project: Path) -> bool:
    """Remove our entry; False when there is none (another `engram` entry stays)."""
    if not is_ours(current(scope, project)):
        return False
    claude = shutil.which("claude")
    if claude:
        _claude(claude, project, "remove", "-s", scope, SERVER_NAME)
        return True
    path = config_path(scope, project)
    data = jsonfile.read_object(path)
    servers = data["mcpServers"]
    del servers[SERVER_NAME]
    if not servers:
        del data["mcpServers"]
    jsonfile.write(path, data)
    return True


def _claude(claude: str, project: Path, *args: str) -> None:
    try:
        done = subprocess.run(
            [claude, "mcp", *args],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=CLAUDE_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise EngramError(
            f"`claude mcp {args[0]}` did not finish in {CLAUDE_TIMEOUT_S:g} s"
        ) from None
    except OSError as exc:
        raise EngramError(f"cannot run {claude}: {exc.strerror}") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise EngramError(
            f"`claude mcp {args[0]}` failed (exit {done.returncode}): "
            f"{detail[-1] if detail else 'no message'}"
        )
