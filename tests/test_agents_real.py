"""`engram run AGENT` with the real agent CLIs at their locked releases (issue 18).

Each test runs one short headless turn of the real CLI (tests/agents/package.json; aider
from PyPI in its own venv) through `engram run` against the loopback stand-in, with one
memory in the project's scope, and checks the three things that make `engram run` worth
using: the agent's request reached the proxy (and the stand-in), the memory was injected
in the format that agent speaks, and each completion call was journaled exactly once
with the agent's project. One run per agent, sharing the stand-in: they are slow (node
start-up, the agents' own set-up calls), so they are few.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engram.store import memories
from engram.store.db import Store
from engram.wire.block import BLOCK_OPEN
from tests.support.agents import agent_bin, agent_env
from tests.support.llm_stub import LLMStub

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("agents")]

PROMPT = "Which port does the staging database listen on?"
# Close to the prompt on purpose: these tests are about routing and wire format, not
# about the recall gate's threshold (bench/recall_eval.py measures that).
MEMORY = "Which port does the staging database listen on? Port 5433, not the default."
OPENAI_KEY = "sk-proj-" + "Tq8vN3kL5pR2xW7z" * 3
ANTHROPIC_KEY = "sk-ant-api03-" + "Hv4nB8qW2eR6tY0u" * 5
GEMINI_KEY = "AIzaSy" + "Dk3mQ8vX2pL5nR7tY9wB4cF6hJ1sA0eZ3u"
GEMINI_ENV = {"GEMINI_API_KEY": GEMINI_KEY, "GEMINI_CLI_TRUST_WORKSPACE": "true"}
GEMINI_SETTINGS = {"security": {"auth": {"selectedType": "gemini-api-key"}}}
# Completion calls each agent makes, by the stand-in's name for them.
COMPLETIONS = {"anthropic", "openai_chat", "openai_responses", "openai_responses_ws", "gemini"}


@pytest.fixture(scope="module")
def stub() -> Iterator[LLMStub]:
    with LLMStub() as server:
        yield server


@dataclass
class Run:
    done: subprocess.CompletedProcess[str]
    requests: list[Any]  # what reached the stand-in during this run
    rows: list[dict[str, Any]]  # the journal
    project: Path


def engram_run(
    tmp_path: Path,
    stub: LLMStub,
    agent: str,
    args: list[str],
    *,
    upstream: str,
    env: dict[str, str],
    home_files: dict[str, Any] | None = None,
) -> Run:
    agent_bin(agent if agent != "aider" else "aider")  # skips (or fails under CI) if missing
    home = tmp_path / "home"
    project = tmp_path / "shop"
    project.mkdir(parents=True)
    home.mkdir()
    for rel, content in (home_files or {}).items():
        path = home / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))
    db = tmp_path / "engram.db"
    # A loaded 2-core CI machine can take longer than the default 50 ms to recall: these
    # tests are about routing and format, not about the budget (tests/test_proxy.py is).
    full_env = agent_env(home, ENGRAM_DB=str(db), ENGRAM_PROXY_RECALL_BUDGET_MS="3000", **env)
    full_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full_env['PATH']}"
    store = Store(db)  # in-process: one Python start-up less per test
    store.ensure()
    with store.write() as session:
        memories.add(session, MEMORY, scope=str(project))
    store.close()
    seen = len(stub.requests)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "engram",
            "run",
            agent,
            "--upstream",
            upstream,
            "--analyzer",
            "none",
            "--",
            *args,
        ],
        cwd=project,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
    )
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    rows = [dict(r) for r in conn.execute("SELECT * FROM exchanges ORDER BY id")]
    conn.close()
    return Run(done, stub.requests[seen:], rows, project)


def check(run: Run, placement: Any) -> None:
    """The three promises, for any agent; `placement(body)` is where its memory sits."""
    assert run.done.returncode == 0, run.done.stderr[-3000:]
    calls = [r for r in run.requests if r.api in COMPLETIONS]
    assert calls, f"no completion call reached the stand-in: {[r.path for r in run.requests]}"
    asked = [r for r in calls if PROMPT in json.dumps(r.json)]
    assert asked, "the prompt never reached the stand-in"
    marker = json.dumps(BLOCK_OPEN)[1:-1]  # as it reads inside JSON text
    assert any(marker in placement(r.json) and "5433" in placement(r.json) for r in asked), (
        "no request with the prompt carried the memory where this agent's format puts it"
    )
    conversation = [r for r in run.rows if PROMPT in (r["turns"] or "")]
    assert conversation, "the exchange with the prompt was not journaled"
    assert {r["project"] for r in conversation} == {str(run.project)}
    keys = [r["source_key"] for r in run.rows]
    assert len(keys) == len(set(keys))
    # Journaled once: no more rows than completion calls (a side call may be skipped).
    assert len(run.rows) <= len(calls)
    assert "engram-memory" not in json.dumps(run.rows)  # the block never reaches the journal


def anthropic_system(body: Any) -> str:
    return json.dumps(body.get("system"))


def test_claude(tmp_path: Path, stub: LLMStub) -> None:
    run = engram_run(
        tmp_path,
        stub,
        "claude",
        ["-p", PROMPT, "--output-format", "json"],
        upstream=stub.url,
        env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY},
    )
    check(run, anthropic_system)
    assert json.loads(run.done.stdout)["result"].startswith("ok:")  # stdout is the agent's


def test_codex(tmp_path: Path, stub: LLMStub) -> None:
    run = engram_run(
        tmp_path,
        stub,
        "codex",
        ["exec", "--skip-git-repo-check", PROMPT],
        upstream=stub.url + "/v1",
        env={"OPENAI_API_KEY": OPENAI_KEY},
    )
    check(run, lambda body: json.dumps(body.get("instructions")))
    assert any(r.api == "openai_responses_ws" for r in run.requests)  # over the WebSocket
    assert "not captured" not in run.done.stderr


def test_gemini(tmp_path: Path, stub: LLMStub) -> None:
    run = engram_run(
        tmp_path,
        stub,
        "gemini",
        ["-p", PROMPT],
        upstream=stub.url,
        env=GEMINI_ENV,
        home_files={".gemini/settings.json": GEMINI_SETTINGS},
    )
    check(run, lambda body: json.dumps(body.get("systemInstruction")))


def test_gemini_refusal_is_explained(tmp_path: Path, stub: LLMStub) -> None:
    """Without the auth setting, gemini refuses; engram says why and changes nothing."""
    run = engram_run(
        tmp_path,
        stub,
        "gemini",
        ["-p", PROMPT],
        upstream=stub.url,
        env=GEMINI_ENV,
    )
    assert run.done.returncode != 0
    assert "selectedType" in run.done.stderr and "likely why" in run.done.stderr
    assert not (tmp_path / "home" / ".gemini" / "settings.json").exists()


def test_qwen(tmp_path: Path, stub: LLMStub) -> None:
    run = engram_run(
        tmp_path,
        stub,
        "qwen",
        ["-p", PROMPT, "--model", "qwen3-coder-plus"],
        upstream=stub.url + "/v1",
        env={"OPENAI_API_KEY": OPENAI_KEY},
    )
    check(run, lambda body: json.dumps(body.get("messages")))


def test_opencode(tmp_path: Path, stub: LLMStub) -> None:
    run = engram_run(
        tmp_path,
        stub,
        "opencode",
        ["run", "--model", "openai/gpt-5.1", PROMPT],
        upstream=stub.url + "/v1",
        env={"OPENAI_API_KEY": OPENAI_KEY},
    )
    check(
        run,
        lambda body: json.dumps(
            body.get("messages") or body.get("instructions") or body.get("input")
        ),
    )


def test_aider(tmp_path: Path, stub: LLMStub) -> None:
    run = engram_run(
        tmp_path,
        stub,
        "aider",
        [
            "--message",
            PROMPT,
            "--model",
            "openai/gpt-4o-mini",
            "--yes-always",
            "--no-git",
            "--no-check-update",
            "--analytics-disable",
            "--no-show-model-warnings",
            "--no-pretty",
            "--no-fancy-input",
        ],
        upstream=stub.url + "/v1",
        # litellm reads its model price map from the network unless told to use its own.
        env={"OPENAI_API_KEY": OPENAI_KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
    )
    check(run, lambda body: json.dumps(body.get("messages")))
