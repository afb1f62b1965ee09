"""The real Claude Code CLI with engram's MCP server registered by
`engram hooks install claude --mcp`: it connects, and a `tool_use` for
`mcp__engram__memory_search` from the (stand-in) model gets the project's memory back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ENGRAM
from tests.support.agents import agent_bin, agent_env
from tests.support.llm_stub import RecordedRequest, Reply, ToolUse, running_stub

pytestmark = pytest.mark.slow

FAKE_KEY = "sk-ant-api03-" + "kT3mQ8vX1nB6wR4yL9pZ2cF7hJ5sD0gA" * 3 + "QQ"
SEARCH_TOOL = "mcp__engram__memory_search"
MEMORY = "The payments service deploys with `make ship-payments`, never with kubectl directly"


def run(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> str:
    done = subprocess.run(
        args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, (
        f"{args[:3]} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    )
    return done.stdout


def tool_results(request: RecordedRequest) -> list[str]:
    """The text of every tool_result block in an Anthropic request."""
    found = []
    for message in request.json.get("messages", []) if isinstance(request.json, dict) else []:
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                inner = block.get("content")
                if isinstance(inner, list):
                    inner = " ".join(b.get("text", "") for b in inner if isinstance(b, dict))
                found.append(str(inner))
    return found


def offers(request: RecordedRequest, *names: str) -> bool:
    tools = request.json.get("tools", []) if isinstance(request.json, dict) else []
    return any(t.get("name") in names for t in tools)


def test_claude_code_connects_and_searches_memory(tmp_path: Path, db_path: Path) -> None:
    claude = agent_bin("claude")
    home = tmp_path / "home"
    project = tmp_path / "payments"
    (project / ".git").mkdir(parents=True)
    home.mkdir()
    subprocess.run(
        [*ENGRAM, "--db", str(db_path), "add", "--scope", str(project), MEMORY],
        check=True,
        capture_output=True,
        timeout=60,
    )

    def script(request: RecordedRequest) -> Any:
        """The model: search memory, then answer. Claude Code defers MCP tools (and may
        still be connecting to the server): then the model first loads the tool's schema
        with ToolSearch, as a real model does."""
        if request.api != "anthropic" or not offers(request, "ToolSearch", SEARCH_TOOL):
            return None  # side calls (titles, summaries) get the default reply
        results = tool_results(request)
        if results and "make ship-payments" in results[-1]:
            return Reply("Use make ship-payments.")
        if results or offers(request, SEARCH_TOOL):
            query = {"query": "how does the payments service deploy"}
            return Reply(tool_calls=[ToolUse(SEARCH_TOOL, query)])
        return Reply(tool_calls=[ToolUse("ToolSearch", {"query": f"select:{SEARCH_TOOL}"})])

    # Every claude call talks to the stand-in (with a key but no reachable API, even
    # `claude mcp list` spends ~20 s trying).
    with running_stub(script) as stub:
        env = agent_env(home, ANTHROPIC_API_KEY=FAKE_KEY, ANTHROPIC_BASE_URL=stub.url)
        env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"

        # Registered through the real `claude mcp add` (claude is on PATH), idempotently.
        install = [*ENGRAM, "--db", str(db_path), "hooks", "install", "claude", "--mcp"]
        assert run(install, env, project).startswith("installed:")
        listed = run([str(claude), "mcp", "list"], env, project)
        line = next(x for x in listed.splitlines() if x.startswith("engram:"))
        assert "Connected" in line, listed

        ask = ["-p", "How do we deploy the payments service?", "--output-format", "json"]
        out = run([str(claude), *ask, "--allowedTools", SEARCH_TOOL], env, project, timeout=180)
        answers = [r for r in stub.requests if r.api == "anthropic" and tool_results(r)]
    assert json.loads(out)["result"] == "Use make ship-payments."
    assert answers, "Claude Code never sent the tool result upstream"
    sent = " ".join(tool_results(answers[-1]))
    assert "make ship-payments" in sent and str(project) in sent

    removed = [*ENGRAM, "--db", str(db_path), "hooks", "uninstall", "claude", "--mcp"]
    assert run(removed, env, project).startswith("removed:")
    assert "engram" not in json.loads((home / ".claude.json").read_text()).get("mcpServers", {})
