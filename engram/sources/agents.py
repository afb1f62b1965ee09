"""The coding agents `engram run` knows, and how each is pointed at a proxy.

From shared/reference/agents-and-wire.md. A base URL may carry a path (OpenAI-style
`.../v1`): the agent is given the proxy's address with that same path, and the proxy's
upstream is the origin alone, so `/v1/chat/completions` reaches `https://host/v1/...`.
"""

from __future__ import annotations

import os
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
    flags: tuple[str, ...] = ()  # with {url}: for agents configured by flags (qwen)
    upstream_env: tuple[str, ...] = ()  # other variables naming the real upstream


AGENTS: dict[str, Agent] = {
    a.name: a
    for a in (
        Agent("claude", "claude", "ANTHROPIC_BASE_URL", "https://api.anthropic.com"),
        Agent("codex", "codex", "OPENAI_BASE_URL", "https://api.openai.com/v1"),
        Agent("opencode", "opencode", "OPENAI_BASE_URL", "https://api.openai.com/v1"),
        Agent("aider", "aider", "OPENAI_API_BASE", "https://api.openai.com/v1"),
        Agent("grok", "grok", "GROK_MODELS_BASE_URL", "https://api.x.ai/v1"),
        Agent(
            "qwen",
            "qwen",
            None,
            "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
            flags=("--auth-type", "openai", "--openai-base-url", "{url}"),
            upstream_env=("OPENAI_BASE_URL",),
        ),
        Agent(
            "gemini",
            "gemini",
            "GOOGLE_GEMINI_BASE_URL",
            "https://generativelanguage.googleapis.com",
        ),
    )
}


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
