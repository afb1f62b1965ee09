"""`engram run AGENT`: launch a coding agent behind an `engram proxy` on loopback.

The agent's base-URL variable (or flag) points at the proxy; the child also gets
ENGRAM_UPSTREAM (so a nested `engram run` goes to the real upstream, not to us) and runs
in the current directory, which is the project its memories belong to. Ctrl-C goes to
the agent (it shares our terminal's process group); SIGTERM and SIGHUP are forwarded.
The agent's exit code is returned.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engram.errors import EngramError
from engram.sources.agents import Agent, Route


@dataclass
class Plan:
    agent: Agent
    route: Route
    command: list[str]
    env_changes: dict[str, str]
    project: str
    inject: bool

    def describe(self, proxy_url: str) -> list[str]:
        lines = [
            f"agent:     {self.agent.name} ({self.command[0]})",
            f"project:   {self.project}",
            f"proxy:     {proxy_url} -> {self.route.origin}",
            f"upstream:  {self.route.upstream_base}",
            f"memory:    {'recall and inject' if self.inject else 'capture only (--no-inject)'}",
        ]
        for key, value in self.env_changes.items():
            lines.append(f"env:       {key}={value}")
        lines.append(f"command:   {shlex.join(self.command)}")
        return lines


def plan(agent: Agent, route: Route, args: Sequence[str], proxy_url: str, *,
         inject: bool = True, cwd: Path | None = None) -> Plan:
    url = route.agent_url(proxy_url)
    binary = shutil.which(agent.binary) or agent.binary
    command = [binary, *(f.replace("{url}", url) for f in agent.flags), *args]
    env = {"ENGRAM_UPSTREAM": route.upstream_base}
    if agent.env_var:
        env[agent.env_var] = url
    return Plan(agent, route, command, env, str((cwd or Path.cwd()).resolve()), inject)


def run_child(plan: Plan) -> int:
    if shutil.which(plan.command[0]) is None and not Path(plan.command[0]).exists():
        raise EngramError(f"{plan.agent.binary} is not installed (not found on PATH)")
    env = {**os.environ, **plan.env_changes}
    child = subprocess.Popen(plan.command, env=env, cwd=plan.project)

    def forward(signum: int, _frame: Any) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    previous = {
        signal.SIGTERM: signal.signal(signal.SIGTERM, forward),
        signal.SIGHUP: signal.signal(signal.SIGHUP, forward),
        # The terminal delivers Ctrl-C to the agent too; let the agent decide what it means.
        signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN),
    }
    try:
        code = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return code if code >= 0 else 128 - code
