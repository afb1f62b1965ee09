"""Will this agent run headless through `engram run`, and is it set up for memory?

Shared by `engram run` (said before the agent starts, and again as the likely reason
when it exits non-zero) and `engram doctor`. Nothing here changes an agent's settings
or prints a secret: files are read for the presence of a key, never for its value.

What each agent needs was observed with the releases in `agents.AGENTS[...].tested`:
- Gemini CLI 0.61 refuses a headless run (`gemini -p`) without GEMINI_API_KEY ("When
  using Gemini API, you must specify the GEMINI_API_KEY environment variable", exit 41),
  without `security.auth.selectedType: "gemini-api-key"` in its settings ("Invalid auth
  method selected", exit 41), and outside a trusted folder (exit 55, unless
  GEMINI_CLI_TRUST_WORKSPACE=true or --skip-trust).
- Codex signed in with ChatGPT talks to chatgpt.com, not to the base URL: nothing would
  pass through the proxy (`engram run --mitm codex` captures that mode).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

HOOK_FLAG = "--from-hook"  # `engram prime --from-hook`, as `engram hooks install` writes it


def problems(
    name: str, project: str, env: Mapping[str, str], args: Sequence[str] = ()
) -> list[str]:
    if name == "gemini":
        return gemini_problems(project, env, args)
    if name == "codex":
        return codex_problems(env)
    return []


def _home(env: Mapping[str, str]) -> Path:
    return Path(env.get("HOME") or Path.home())


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _get(data: Mapping[str, Any], *keys: str) -> Any:
    node: Any = data
    for key in keys:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def gemini_problems(project: str, env: Mapping[str, str], args: Sequence[str] = ()) -> list[str]:
    out: list[str] = []
    home = Path(env["GEMINI_CLI_HOME"]) if env.get("GEMINI_CLI_HOME") else _home(env)
    user = _json(home / ".gemini" / "settings.json")
    workspace = _json(Path(project) / ".gemini" / "settings.json")
    if not env.get("GEMINI_API_KEY"):
        out.append(
            "gemini needs GEMINI_API_KEY to run through engram (API-key mode; its Google "
            "login does not use the base URL): set it, or use `engram run --mitm gemini`"
        )
    selected = None
    for settings in (workspace, user):  # the workspace's settings win
        selected = _get(settings, "security", "auth", "selectedType") or settings.get(
            "selectedAuthType"
        )
        if selected:
            break
    if selected != "gemini-api-key":
        out.append(
            'gemini refuses a headless run ("Invalid auth method selected") unless '
            '~/.gemini/settings.json has {"security": {"auth": {"selectedType": '
            f'"gemini-api-key"}}}} (found: {selected or "nothing"}); engram does not change it'
        )
    # Only a headless run refuses: an interactive gemini asks whether to trust the folder.
    headless = any(a in ("-p", "--prompt") or a.startswith("--prompt=") for a in args) or (
        not sys.stdin.isatty()
    )
    if headless and not _gemini_trusted(project, env, args, home, user, workspace):
        out.append(
            f"gemini refuses to run headless outside a trusted folder ({project}): set "
            "GEMINI_CLI_TRUST_WORKSPACE=true for the run, pass --skip-trust, or trust the "
            "folder once in interactive gemini"
        )
    return out


def _gemini_trusted(
    project: str,
    env: Mapping[str, str],
    args: Sequence[str],
    home: Path,
    user: Mapping[str, Any],
    workspace: Mapping[str, Any],
) -> bool:
    if env.get("GEMINI_CLI_TRUST_WORKSPACE", "").lower() == "true" or "--skip-trust" in args:
        return True
    if _get(user, "security", "folderTrust", "enabled") is False:
        return True
    path = Path(project).resolve()
    rules = _json(home / ".gemini" / "trustedFolders.json")
    for folder, rule in rules.items():
        base = Path(folder).expanduser().resolve()
        if rule == "TRUST_PARENT":
            base = base.parent
        if rule in ("TRUST_FOLDER", "TRUST_PARENT") and (path == base or base in path.parents):
            return True
    return False


def codex_problems(env: Mapping[str, str]) -> list[str]:
    if env.get("OPENAI_API_KEY") or env.get("CODEX_API_KEY"):
        return []
    home = Path(env["CODEX_HOME"]) if env.get("CODEX_HOME") else _home(env) / ".codex"
    auth = _json(home / "auth.json")
    if auth.get("OPENAI_API_KEY"):
        return []
    if auth.get("tokens"):
        return [
            "codex is signed in with ChatGPT: that mode talks to chatgpt.com and ignores "
            "the base URL, so nothing would reach engram; set OPENAI_API_KEY, or use "
            "`engram run --mitm codex`"
        ]
    return ["codex has no API key (OPENAI_API_KEY, or `codex login --with-api-key`)"]


def claude_hook_files(project: str, env: Mapping[str, str] | None = None) -> list[Path]:
    """The Claude Code settings files that run `engram prime` at session start."""
    env = os.environ if env is None else env
    found = []
    for path in (
        _home(env) / ".claude" / "settings.json",
        Path(project) / ".claude" / "settings.json",
    ):
        groups = _get(_json(path), "hooks", "SessionStart")
        commands = [
            hook.get("command", "")
            for group in (groups if isinstance(groups, list) else [])
            if isinstance(group, Mapping)
            for hook in (group.get("hooks") or [])
            if isinstance(hook, Mapping)
        ]
        if any(isinstance(c, str) and c.endswith(f"prime {HOOK_FLAG}") for c in commands):
            found.append(path)
    return found
