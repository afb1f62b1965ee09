"""Checks of what sits at engram's edges: the agents `engram run` launches (owned with
engram/sources/agents.py) and a running `engram ui`."""

from __future__ import annotations

import os
from pathlib import Path

from engram.doctor.check import Check, session


def check_agents() -> list[Check]:
    """Which supported agents are on PATH, their release, whether `engram run` routes
    that release, what a headless Gemini run still needs, and the Claude Code hook."""
    import shutil

    from engram.sources import agent_checks
    from engram.sources.agents import AGENTS, installed_version, version_key

    out: list[Check] = []
    project = str(Path.cwd())
    for agent in AGENTS.values():
        path = shutil.which(agent.binary)
        if path is None:
            where = f" ({agent.package})" if agent.package else ""
            out.append(Check("agents", agent.name, "skip", f"not on PATH{where}", required=False))
            continue
        version = installed_version(path)
        route = f"routed by {agent.routing}"
        if version is None:
            status, detail = "warn", f"{path}: `--version` said no version; {route}"
        elif not agent.tested:
            status, detail = "warn", f"{version} at {path}; {route} (never verified here)"
        elif version_key(version) == version_key(agent.tested):
            status, detail = "ok", f"{version} at {path}; {route} (verified)"
        elif version_key(version) > version_key(agent.tested):
            status = "ok"
            detail = f"{version} at {path}; {route} (verified with {agent.tested}, newer)"
        else:
            status = "ok"
            detail = f"{version} at {path}; {route} (verified with {agent.tested})"
        out.append(Check("agents", agent.name, status, detail, required=False))
        if agent.name in ("gemini", "codex"):
            problems = agent_checks.problems(agent.name, project, os.environ)
            out.append(
                Check(
                    "agents",
                    f"{agent.name} through engram",
                    "warn" if problems else "ok",
                    "; ".join(problems) if problems else "ready for a headless run",
                    required=False,
                )
            )
    hooks = agent_checks.claude_hook_files(project)
    out.append(
        Check(
            "agents",
            "Claude Code hook",
            "ok" if hooks else "skip",
            f"SessionStart runs `engram prime` ({', '.join(map(str, hooks))})"
            if hooks
            else "not installed",
            "" if hooks else "`engram hooks install claude` primes each session with memory",
            required=False,
        )
    )
    return out


def check_ui() -> list[Check]:
    """`engram ui` has nothing to check unless it runs: then, that it answers."""
    from engram.ui.instances import running

    servers = running()
    if not servers:
        return [
            Check(
                "ui",
                "web UI",
                "skip",
                "not running",
                "`engram ui` starts it (a local page: memories, requests, recall, cost)",
                required=False,
            )
        ]
    out = []
    for server in servers:
        try:
            answer = session().get(server.base_url + "/healthz", timeout=3)
            ok = answer.status_code == 200 and answer.json().get("app") == "engram-ui"
        except Exception:
            ok = False
        out.append(
            Check(
                "ui",
                "web UI",
                "ok" if ok else "warn",
                f"{server.base_url} (pid {server.pid}, database {server.db})"
                + ("" if ok else " does not answer"),
                "" if ok else f"stop it (kill {server.pid}) and start `engram ui` again",
                required=False,
            )
        )
    return out
