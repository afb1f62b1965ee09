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
