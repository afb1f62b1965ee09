"""`engram prime` and `engram hooks install|uninstall claude`."""

from __future__ import annotations

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


def hook_command() -> str:
    """What Claude Code runs: this installation's engram, by absolute path."""
    exe = Path(sys.executable).parent / "engram"
    return f"{exe if exe.exists() else 'engram'} prime {HOOK_FLAG}"


def settings_path(scope: str, project: Path) -> Path:
    if scope == "user":
        return Path.home() / ".claude" / "settings.json"
    return project / ".claude" / "settings.json"


def _load(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EngramError(f"{path} is not valid JSON ({exc}); not changing it") from None
    if not isinstance(data, dict):
        raise EngramError(f"{path} does not hold a JSON object; not changing it")
    return data


def _ours(entry: Any) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("command"), str)
        and entry["command"].endswith(f"prime {HOOK_FLAG}")
    )


def install_hook(path: Path) -> bool:
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
            "hooks": [{"type": "command", "command": hook_command(), "timeout": 10}],
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
    _write(path, data)
    return True


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".engram-tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


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
    agent: str = typer.Argument(..., help="claude"),
    user: bool = typer.Option(False, "--user", help="~/.claude/settings.json (default)."),
    project: bool = typer.Option(False, "--project", help=".claude/settings.json of this project."),
) -> None:
    """Add a SessionStart hook that runs `engram prime` (idempotent; keeps the rest)."""
    path = _target(agent, user, project)
    changed = install_hook(path)
    typer.echo(f"{'installed' if changed else 'already installed'}: {path}")


@hooks_app.command("uninstall")
def hooks_uninstall(
    agent: str = typer.Argument(..., help="claude"),
    user: bool = typer.Option(False, "--user"),
    project: bool = typer.Option(False, "--project"),
) -> None:
    """Remove exactly the hook `engram hooks install` added."""
    path = _target(agent, user, project)
    changed = uninstall_hook(path)
    typer.echo(f"{'removed' if changed else 'not installed'}: {path}")


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
