"""`engram prime` and `engram hooks install|uninstall claude`."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import typer

from engram.cli.base import app
from engram.cli.context import state
from engram.errors import EngramError

HOOK_FLAG = "--from-hook"


def hook_command(scope: str = "user") -> str:
    """What Claude Code runs at session start.

    In the user's own settings: this installation's engram, by absolute path (a venv's
    engram need not be on the PATH Claude Code sees). In a project's settings, which are
    committed and shared: `engram` through PATH, and a teammate without engram gets no
    error, since Claude Code runs hook commands through a shell (`|| true`).
    """
    if scope == "project":
        return f"engram prime {HOOK_FLAG} 2>/dev/null || true"
    from engram.mcp.register import engram_executable

    return f"{engram_executable()} prime {HOOK_FLAG}"


def settings_path(scope: str, project: Path) -> Path:
    if scope == "user":
        return Path.home() / ".claude" / "settings.json"
    return project / ".claude" / "settings.json"


def _load(path: Path) -> dict[str, Any]:
    from engram import jsonfile

    return jsonfile.read_object(path)


def _ours(entry: Any) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("command"), str)
        and f"prime {HOOK_FLAG}" in entry["command"]
    )


def install_hook(path: Path, scope: str = "user") -> bool:
    """Add the SessionStart hook, keeping everything else; False if it was there."""
    data = _load(path)
    hooks = data.setdefault("hooks", {})
    groups = hooks.setdefault("SessionStart", [])
    if not isinstance(hooks, dict) or not isinstance(groups, list):
        raise EngramError(f"{path}: hooks.SessionStart is not a list; not changing it")
    for group in groups:
        if isinstance(group, dict) and any(_ours(h) for h in group.get("hooks", [])):
            return False
    groups.append(
        {
            "matcher": "startup|resume|clear|compact",
            "hooks": [{"type": "command", "command": hook_command(scope), "timeout": 10}],
        }
    )
    _write(path, data)
    return True


def uninstall_hook(path: Path) -> bool:
    data = _load(path)
    groups = data.get("hooks", {}).get("SessionStart")
    if not isinstance(groups, list):
        return False
    changed = False
    kept = []
    for group in groups:
        if isinstance(group, dict) and isinstance(group.get("hooks"), list):
            rest = [h for h in group["hooks"] if not _ours(h)]
            if len(rest) != len(group["hooks"]):
                changed = True
                if not rest:
                    continue
                group = {**group, "hooks": rest}
        kept.append(group)
    if not changed:
        return False
    if kept:
        data["hooks"]["SessionStart"] = kept
    else:
        del data["hooks"]["SessionStart"]
        if not data["hooks"]:
            del data["hooks"]
    if data:
        _write(path, data)
    else:  # nothing left but what install created: leave no empty `{}` behind
        path.unlink()
        with contextlib.suppress(OSError):  # .claude/ too, if engram made it and it is empty
            path.parent.rmdir()
    return True


def _write(path: Path, data: dict[str, Any]) -> None:
    from engram import jsonfile

    jsonfile.write(path, data)


@app.command()
def prime(
    ctx: typer.Context,
    project: Path | None = typer.Option(
        None, "--project", "-p", help="Project directory [default: the current git work tree]."
    ),
    budget: int = typer.Option(1500, "--budget", min=100, help="Token budget."),
    from_hook: bool = typer.Option(False, HOOK_FLAG, hidden=True),
) -> None:
    """Print the project's and global memories that matter most, for an agent's
    session-start context (Claude Code: `engram hooks install claude`)."""
    from engram.paths import project_root
    from engram.prime import prime as build

    try:
        directory = project or _hook_project() if from_hook else project
        root = str(project_root(directory) if directory else project_root())
        with state(ctx).store.read() as conn:
            text = build(conn, root, budget).render(root)
    except Exception as exc:
        if from_hook:  # a session must never fail to start because of engram
            sys.stderr.write(f"engram prime: {exc}\n")
            return
        raise
    if text:
        sys.stdout.write(text)


hooks_app = typer.Typer(
    help="Agent hooks (Claude Code's SessionStart runs `engram prime`).", no_args_is_help=True
)
app.add_typer(hooks_app, name="hooks")


def _target(agent: str, user: bool, project: bool) -> Path:
    if agent != "claude":
        raise EngramError(f"hooks exist for claude only, not {agent!r}")
    if user and project:
        raise EngramError("choose --user or --project, not both")
    from engram.paths import project_root

    return settings_path("project" if project else "user", project_root())


@hooks_app.command("install")
def hooks_install(
    ctx: typer.Context,
    agent: str = typer.Argument(..., help="claude"),
    user: bool = typer.Option(False, "--user", help="~/.claude/settings.json (default)."),
    project: bool = typer.Option(False, "--project", help=".claude/settings.json of this project."),
    mcp: bool = typer.Option(
        False,
        "--mcp",
        help="Register the `engram mcp` server instead of the hook (user: ~/.claude.json, "
        "project: .mcp.json; through `claude mcp add` when claude is on PATH).",
    ),
) -> None:
    """Add a SessionStart hook that runs `engram prime` (idempotent; keeps the rest), or
    with --mcp register engram's MCP server with Claude Code."""
    if mcp:
        from engram.mcp import register

        scope, root = _mcp_target(agent, user, project)
        outcome = register.install(scope, root, _global_args(ctx))
        typer.echo(f"{outcome}: MCP server engram in {register.config_path(scope, root)}")
        return
    path = _target(agent, user, project)
    changed = install_hook(path, "project" if project else "user")
    typer.echo(f"{'installed' if changed else 'already installed'}: {path}")


@hooks_app.command("uninstall")
def hooks_uninstall(
    agent: str = typer.Argument(..., help="claude"),
    user: bool = typer.Option(False, "--user"),
    project: bool = typer.Option(False, "--project"),
    mcp: bool = typer.Option(False, "--mcp", help="Remove the MCP server entry instead."),
) -> None:
    """Remove exactly the hook (or with --mcp the MCP server) `engram hooks install` added."""
    if mcp:
        from engram.mcp import register

        scope, root = _mcp_target(agent, user, project)
        removed = register.uninstall(scope, root)
        where = register.config_path(scope, root)
        typer.echo(f"{'removed' if removed else 'not installed'}: MCP server engram in {where}")
        return
    path = _target(agent, user, project)
    changed = uninstall_hook(path)
    typer.echo(f"{'removed' if changed else 'not installed'}: {path}")


def _mcp_target(agent: str, user: bool, project: bool) -> tuple[str, Path]:
    _target(agent, user, project)  # the same checks as for the hook
    from engram.paths import project_root

    return ("project" if project else "user"), project_root()


def _global_args(ctx: typer.Context) -> list[str]:
    """--db/--config given to this command, passed on to the registered server."""
    st = state(ctx)
    args = []
    if st.db_flag:
        args += ["--db", str(Path(st.db_flag).expanduser().resolve())]
    if st.config_flag:
        args += ["--config", str(Path(st.config_flag).expanduser().resolve())]
    return args


def _hook_project() -> Path | None:
    """Claude Code passes the session's cwd on stdin and in CLAUDE_PROJECT_DIR."""
    env = os.environ.get("CLAUDE_PROJECT_DIR")
    if env:
        return Path(env)
    if not sys.stdin.isatty():
        try:
            data = json.loads(sys.stdin.read() or "{}")
            if isinstance(data, dict) and isinstance(data.get("cwd"), str):
                return Path(data["cwd"])
        except (json.JSONDecodeError, OSError, UnicodeDecodeError):
            return None
    return None
