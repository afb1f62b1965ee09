"""The claude-code backend: the real Claude Code CLI (from .tools/agents) against the
loopback stand-in API, through `engram analyze`.

The CLI is pointed at the stand-in with ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY only;
nothing else about its environment is assumed (its own HOME, from the autouse fixture).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Cli
from test_analyzer_runner import FAKE_KEY, capture

from engram.analyzer.backend_claude_code import child_env
from engram.paths import ANALYZER_WORKDIR_NAME
from engram.store.db import Store
from tests.support.agents import agent_bin
from tests.support.llm_stub import LLMStub, Reply


@pytest.fixture
def stub() -> Iterator[LLMStub]:
    with LLMStub() as server:
        yield server


def claude_env(stub: LLMStub) -> dict[str, str]:
    return {
        "ANTHROPIC_BASE_URL": stub.url,
        "ANTHROPIC_API_KEY": FAKE_KEY,
        "ENGRAM_ANALYZER_CLAUDE_COMMAND": str(agent_bin("claude")),
        "ENGRAM_ANALYZER_RETRIES": "0",
    }


@pytest.mark.slow
def test_claude_code_distils_with_the_real_cli(
    cli: Cli, stub: LLMStub, store: Store, db_path: Path
) -> None:
    capture(store, "a", "c1", ["No, we use pnpm in this repo, never npm."])
    stub.script = Reply(
        text='engram add --kind preference --scope project "Use pnpm in this repo, never npm"'
    )
    report = cli.json("analyze", "--analyzer", "claude-code", env=claude_env(stub))
    assert [m["content"] for m in report["added"]] == ["Use pnpm in this repo, never npm"]
    assert report["cost_usd"] > 0 and report["input_tokens"] > 0  # from the CLI's JSON result

    calls = [r for r in stub.requests if r.api == "anthropic"]
    assert len(calls) == 1  # one turn
    call = calls[0]
    assert call.header("X-Engram-Internal") == "1"
    assert not call.json.get("tools")  # no tools at all
    system = json.dumps(call.json["system"])
    assert "You maintain the long-term memory" in system  # engram's prompt, not Claude Code's
    assert "pnpm" in json.dumps(call.json["messages"])
    assert ANALYZER_WORKDIR_NAME in json.dumps(call.json)  # its cwd: the skipped project

    conn = sqlite3.connect(db_path)
    backend, cost = conn.execute("SELECT backend, cost_usd FROM analyzer_runs").fetchone()
    status = conn.execute("SELECT status FROM exchanges").fetchone()[0]
    conn.close()
    assert backend == "claude-code" and cost > 0 and status == "analyzed"
    assert cli.json("stats")["analyzer"]["total"]["cost_usd"] > 0


@pytest.mark.slow
def test_claude_code_not_logged_in_keeps_the_batch(cli: Cli, store: Store, db_path: Path) -> None:
    capture(store, "a", "c1", ["We deploy with make deploy-prod."])
    with LLMStub(api_keys={"sk-ant-api03-someone-else"}) as stub:
        result = cli("analyze", "--analyzer", "claude-code", ok=False, env=claude_env(stub))
    assert result.exit_code != 0
    assert "claude /login" in result.output
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT status, attempts FROM exchanges").fetchall() == [("pending", 0)]
    conn.close()


def test_child_environment_never_routes_through_engram() -> None:
    env = child_env(
        {
            "PATH": "/usr/bin",
            "HTTPS_PROXY": "http://127.0.0.1:8080",  # mitmweb or engram's interceptor
            "http_proxy": "http://proxy.corp.example:3128",  # a real proxy stays
            "ANTHROPIC_BASE_URL": "http://127.0.0.1:8787",  # `engram proxy`
            "ANTHROPIC_CUSTOM_HEADERS": "X-Team: infra",
            "CLAUDECODE": "1",
        },
        engram_listen=["127.0.0.1:8787"],
    )
    assert "HTTPS_PROXY" not in env and env["http_proxy"] == "http://proxy.corp.example:3128"
    assert "ANTHROPIC_BASE_URL" not in env and "CLAUDECODE" not in env
    assert env["ANTHROPIC_CUSTOM_HEADERS"].splitlines() == ["X-Team: infra", "X-Engram-Internal: 1"]
    inside_run = child_env(
        {
            "ANTHROPIC_BASE_URL": "http://127.0.0.1:40123",  # `engram run`'s random port
            "ENGRAM_UPSTREAM": "https://api.anthropic.com",
        }
    )
    assert inside_run["ANTHROPIC_BASE_URL"] == "https://api.anthropic.com"
    own = child_env(
        {"ANTHROPIC_BASE_URL": "http://127.0.0.1:9999"}, engram_listen=["127.0.0.1:8787"]
    )
    assert own["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9999"  # not engram's: kept


def test_claude_code_missing_cli_is_one_clear_error(cli: Cli, store: Store) -> None:
    capture(store, "a", "c1", ["We deploy with make deploy-prod."])
    result = cli(
        "analyze",
        "--analyzer",
        "claude-code",
        ok=False,
        env={"ENGRAM_ANALYZER_CLAUDE_COMMAND": "/nonexistent/claude"},
    )
    assert result.exit_code != 0 and "not on PATH" in result.output
