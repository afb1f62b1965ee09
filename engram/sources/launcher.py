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

    def describe(self, proxy_url: str, version: str | None = None) -> list[str]:
        found = shutil.which(self.command[0]) is not None or Path(self.command[0]).exists()
        installed = (version or "version unknown") if found else "not installed"
        tested = f"; tested with {self.agent.tested}" if self.agent.tested else ""
        lines = [
            f"agent:     {self.agent.name} ({self.command[0]}, {installed}{tested})",
            f"routing:   {self.agent.routing or 'HTTPS_PROXY (--mitm)'}",
            f"project:   {self.project}",
            f"proxy:     {proxy_url} -> {self.route.origin}",
            f"upstream:  {self.route.upstream_base}",
            f"memory:    {'recall and inject' if self.inject else 'capture only (--no-inject)'}",
        ]
        for key, value in self.env_changes.items():
            lines.append(f"env:       {key}={value}")
        lines.append(f"command:   {shlex.join(self.command)}")
        return lines


def plan(
    agent: Agent,
    route: Route,
    args: Sequence[str],
    proxy_url: str,
    *,
    inject: bool = True,
    cwd: Path | None = None,
    intercept_env: dict[str, str] | None = None,
) -> Plan:
    """The launch: base-URL mode points the agent at our proxy; with `intercept_env`
    (--mitm) the agent keeps its own upstream and goes through mitmdump instead."""
    binary = shutil.which(agent.binary) or agent.binary
    project = str((cwd or Path.cwd()).resolve())
    if intercept_env is not None:
        return Plan(agent, route, [binary, *args], dict(intercept_env), project, inject)
    url = route.agent_url(proxy_url)
    command = [binary, *(f.replace("{url}", url) for f in agent.flags), *args]
    env = {"ENGRAM_UPSTREAM": route.upstream_base}
    if agent.env_var:
        env[agent.env_var] = url
    return Plan(agent, route, command, env, project, inject)


def require_binary(plan: Plan) -> None:
    if shutil.which(plan.command[0]) is None and not Path(plan.command[0]).exists():
        where = f" (from {plan.agent.package})" if plan.agent.package else ""
        raise EngramError(
            f"{plan.agent.binary} is not installed (not found on PATH)",
            hint=f"install {plan.agent.name}{where}, or check PATH",
        )


def preflight(plan: Plan, env: dict[str, str] | None = None) -> list[str]:
    """What will make the agent refuse to run headless, said before it does (engram
    changes none of the agent's settings). Empty when nothing is known to be wrong."""
    from engram.sources import agent_checks

    return agent_checks.problems(
        plan.agent.name, plan.project, dict(env or os.environ), plan.command[1:]
    )


def run_child(plan: Plan) -> int:
    require_binary(plan)
    # PWD too: some agents (opencode) take their directory from it, and it is stale when
    # engram itself was started by something that changed directory without a shell.
    env = {**os.environ, "PWD": plan.project, **plan.env_changes}
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


# -- --mitm: for agents that ignore base-URL variables ---------------------------------

PROXY_VARS = ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "ALL_PROXY", "all_proxy")
CA_VARS = ("NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


class LogRelay:
    """Forwards what mitmdump prints (warnings and errors only: `termlog_verbosity=warn`)
    to our stderr, so the addon's journaling errors are seen instead of going to a stdout
    nobody reads. A line seen before is counted, not repeated: a full disk fails every
    flow the same way. Reading also keeps mitmdump from blocking on a full pipe."""

    def __init__(self, stream: Any, prefix: str = "engram: mitmdump: ") -> None:
        import threading

        self.stream = stream
        self.prefix = prefix
        self.lines: list[str] = []  # the last lines, for a start-up failure's message
        self.repeats = 0
        self._seen: set[str] = set()
        self.thread = threading.Thread(target=self._run, name="mitmdump-log", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import sys

        for raw in iter(self.stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            if not line:
                continue
            self.lines = [*self.lines[-20:], line]
            if line in self._seen:
                self.repeats += 1
                continue
            self._seen.add(line)
            sys.stderr.write(self.prefix + line + "\n")
            sys.stderr.flush()

    def close(self) -> None:
        import sys

        self.thread.join(5)
        if self.repeats:
            sys.stderr.write(f"{self.prefix}({self.repeats} repeated lines not shown)\n")


@dataclass
class Interceptor:
    """An engram-owned mitmdump with the addon in regular proxy mode, capturing and
    injecting itself (no watcher is involved)."""

    proc: subprocess.Popen[bytes]
    port: int
    ca: Path
    relay: LogRelay | None = None

    def env(self) -> dict[str, str]:
        url = f"http://127.0.0.1:{self.port}"
        out = dict.fromkeys(PROXY_VARS, url)
        out.update(dict.fromkeys(CA_VARS, str(self.ca)))
        out["NODE_USE_ENV_PROXY"] = "1"  # Node's fetch ignores HTTPS_PROXY otherwise
        return out

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # the addon flushes its journal writes
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        if self.relay is not None:
            self.relay.close()


def start_interceptor(
    project: str, db_path: Path, *, inject: bool, confdir: Path | None = None, timeout: float = 30.0
) -> Interceptor:
    import socket
    import sys
    import time

    from engram.paths import data_dir, make_private_dir
    from engram.sources import addon

    confdir = confdir or data_dir() / "mitmproxy"
    make_private_dir(confdir)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    binary = Path(sys.executable).parent / "mitmdump"
    command = [
        str(binary if binary.exists() else "mitmdump"),
        "--listen-host",
        "127.0.0.1",
        "--listen-port",
        str(port),
        "--set",
        f"confdir={confdir}",
        "-s",
        str(Path(addon.__file__).resolve()),
        "--set",
        "engram_capture=true",
        "--set",
        f"engram_inject={'true' if inject else 'false'}",
        "--set",
        "store_streamed_bodies=true",
        "--set",
        "termlog_verbosity=warn",
        "--set",
        "flow_detail=0",
    ]
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    env.update({"ENGRAM_DB": str(db_path), "ENGRAM_PROJECT": project})
    proc = subprocess.Popen(
        command,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    relay = LogRelay(proc.stdout)
    ca = confdir / "mitmproxy-ca-cert.pem"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            relay.close()
            raise EngramError(f"mitmdump exited: {' / '.join(relay.lines[-3:])[-400:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                if ca.exists():
                    return Interceptor(proc, port, ca, relay)
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    proc.wait(10)
    relay.close()
    raise EngramError("mitmdump did not start in time")
