"""The coding agents `engram run` knows, and how each is pointed at a proxy.

From shared/reference/agents-and-wire.md, verified against the releases in `tested` by
tests/test_agents_real.py. A base URL may carry a path (OpenAI-style `.../v1`): the agent
is given the proxy's address with that same path, and the proxy's upstream is the origin
alone, so `/v1/chat/completions` reaches `https://host/v1/...`.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from engram.errors import EngramError


@dataclass(frozen=True)
class Agent:
    name: str
    binary: str
    env_var: str | None  # the base-URL variable, or None when a flag is used
    default_upstream: str
    flags: tuple[str, ...] = ()  # with {url}: added before the agent's own arguments
    upstream_env: tuple[str, ...] = ()  # other variables naming the real upstream
    tested: str = ""  # the release `engram run` was verified with
    package: str = ""  # where it comes from

    @property
    def routing(self) -> str:
        """How `engram run` points this agent at the proxy, in words."""
        parts = [" ".join(f.replace("{url}", "URL") for f in self.flags)] if self.flags else []
        if self.env_var:
            parts.append(f"env {self.env_var}")
        return " + ".join(parts)


AGENTS: dict[str, Agent] = {
    a.name: a
    for a in (
        Agent(
            "claude",
            "claude",
            "ANTHROPIC_BASE_URL",
            "https://api.anthropic.com",
            tested="2.1.332",
            package="npm @anthropic-ai/claude-code",
        ),
        # Codex 0.171 ignores OPENAI_BASE_URL and reads the config key `openai_base_url`
        # (a `-c` override: the user's ~/.codex/config.toml and auth stay untouched);
        # older releases read the variable, which is still set. It opens a WebSocket on
        # /v1/responses first: the proxy splices it and reads the turns (ws_proxy).
        Agent(
            "codex",
            "codex",
            "OPENAI_BASE_URL",
            "https://api.openai.com/v1",
            flags=("-c", 'openai_base_url="{url}"'),
            tested="0.171.0",
            package="npm @openai/codex",
        ),
        Agent(
            "opencode",
            "opencode",
            "OPENAI_BASE_URL",
            "https://api.openai.com/v1",
            tested="1.18.33",
            package="npm opencode-ai",
        ),
        Agent(
            "aider",
            "aider",
            "OPENAI_API_BASE",
            "https://api.openai.com/v1",
            tested="0.86.2",
            package="PyPI aider-chat",
        ),
        Agent("grok", "grok", "GROK_MODELS_BASE_URL", "https://api.x.ai/v1"),
        Agent(
            "qwen",
            "qwen",
            None,
            "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
            flags=("--auth-type", "openai", "--openai-base-url", "{url}"),
            upstream_env=("OPENAI_BASE_URL",),
            tested="0.24.4",
            package="npm @qwen-code/qwen-code",
        ),
        Agent(
            "gemini",
            "gemini",
            "GOOGLE_GEMINI_BASE_URL",
            "https://generativelanguage.googleapis.com",
            tested="0.61.0",
            package="npm @google/gemini-cli",
        ),
    )
}

_VERSION = re.compile(r"(\d+\.\d+\.\d+(?:[-.][0-9A-Za-z.]+)?)")


def installed_version(binary: str, timeout: float = 15.0) -> str | None:
    """`BINARY --version`'s version number, or None when it does not say (or hangs)."""
    try:
        done = subprocess.run(
            [binary, "--version"],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "NO_COLOR": "1"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    found = _VERSION.search(done.stdout + "\n" + done.stderr)
    return found.group(1) if found else None


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])


@dataclass(frozen=True)
class Route:
    """Where the agent sends (proxy URL + path prefix) and where the proxy forwards."""

    upstream_base: str  # the real base URL, e.g. https://api.openai.com/v1
    origin: str  # scheme://host[:port], the proxy's upstream
    prefix: str  # the base's path, e.g. /v1

    def agent_url(self, proxy_origin: str) -> str:
        return proxy_origin.rstrip("/") + self.prefix


def get_agent(name: str) -> Agent:
    agent = AGENTS.get(name)
    if agent is None:
        raise EngramError(f"unknown agent {name!r} (known: {', '.join(AGENTS)})")
    return agent


def resolve_upstream(
    agent: Agent, env: Mapping[str, str] | None = None, override: str | None = None
) -> Route:
    """The real upstream: --upstream, else ENGRAM_UPSTREAM (set by an enclosing `engram
    run`, so a nested launch does not proxy to its parent), else the agent's own
    variable if the user set it, else the agent's default."""
    env = os.environ if env is None else env
    candidates = [override, env.get("ENGRAM_UPSTREAM")]
    candidates += [env.get(v) for v in ((agent.env_var,) if agent.env_var else ())]
    candidates += [env.get(v) for v in agent.upstream_env]
    base = next((c for c in candidates if c), agent.default_upstream)
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise EngramError(f"upstream {base!r} is not an http(s) URL")
    return Route(
        upstream_base=base.rstrip("/"),
        origin=f"{parts.scheme}://{parts.netloc}",
        prefix=parts.path.rstrip("/"),
    )
