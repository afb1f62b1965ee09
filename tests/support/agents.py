"""The real agent CLIs, installed by `make test-setup` into .tools/agents from
tests/agents/package-lock.json (and aider into .tools/aider from
tests/agents/aider-requirements.txt).

A test that needs one calls `agent_bin("claude")`: the path, or a skip with the reason
when it is missing on a developer's machine. Under CI=true a missing CLI is a failure,
not a skip: CI must run every real-agent test.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AGENTS_BIN = ROOT / ".tools" / "agents" / "node_modules" / ".bin"
AIDER_BIN = ROOT / ".tools" / "aider" / "bin"  # PyPI aider-chat, in a venv of its own


def agent_bin(name: str) -> Path:
    path = (AIDER_BIN if name == "aider" else AGENTS_BIN) / name
    if path.exists():
        return path
    found = shutil.which(name) if os.environ.get("ENGRAM_TEST_AGENTS_FROM_PATH") else None
    if found:
        return Path(found)
    reason = f"{name} is not installed in {AGENTS_BIN} (run `make test-setup`)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def agent_env(home: Path, **extra: str) -> dict[str, str]:
    """A clean environment for an agent CLI: its own HOME, no proxies, no real keys,
    the agents' bin dir first on PATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().endswith("_PROXY")
        and not k.startswith(("ANTHROPIC_", "OPENAI_", "GEMINI_", "GOOGLE_", "ENGRAM_"))
    }
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local/share"),
        PATH=os.pathsep.join([str(AGENTS_BIN), str(AIDER_BIN), env.get("PATH", "")]),
        NO_COLOR="1",
        DISABLE_AUTOUPDATER="1",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
    )
    env.update(extra)
    return env


def codex_provider_args(base_url: str, key_var: str = "OPENAI_API_KEY") -> list[str]:
    """`codex` flags for a Responses endpoint at `base_url` (its /v1 is added) over plain
    HTTP: `openai_base_url` alone makes Codex 0.171 try WebSockets first (~6 s of
    refused upgrades per run); a provider with `supports_websockets=false` does not."""
    return [
        "-c", "model_provider=stub",
        "-c", 'model_providers.stub.name="stub"',
        "-c", f'model_providers.stub.base_url="{base_url}/v1"',
        "-c", f'model_providers.stub.env_key="{key_var}"',
        "-c", "model_providers.stub.supports_websockets=false",
        "-c", 'model_providers.stub.wire_api="responses"',
    ]  # fmt: skip


def qwen_openai_args(base_url: str, key: str, model: str = "qwen3-coder-plus") -> list[str]:
    """`qwen` flags for an OpenAI-compatible endpoint at `base_url` (its /v1 is added)."""
    return [
        "--auth-type", "openai",
        "--openai-base-url", f"{base_url}/v1",
        "--openai-api-key", key,
        "-m", model,
    ]  # fmt: skip


def gemini_api_key_mode(home: Path) -> None:
    """Gemini CLI 0.61 needs its auth type chosen in settings to use GEMINI_API_KEY."""
    import json

    (home / ".gemini").mkdir(parents=True, exist_ok=True)
    (home / ".gemini" / "settings.json").write_text(
        json.dumps({"security": {"auth": {"selectedType": "gemini-api-key"}}})
    )


def script_agent(tmp_path: Path, source: str, name: str = "claude") -> dict[str, str]:
    """A Python script standing in for an agent CLI: written as `name` into tmp_path/bin,
    executable. Returns an environment with that directory first on PATH, a database at
    tmp_path/e.db and a data dir of its own (where `engram run --mitm` keeps its CA)."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    agent = bindir / name
    agent.write_text(source)
    agent.chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
        "ENGRAM_DB": str(tmp_path / "e.db"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
    }
