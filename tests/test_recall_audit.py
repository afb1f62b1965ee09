"""No cold first request, and an audit per request: through `engram proxy`'s code with the
real SDKs, and through `engram run` with the real Claude Code CLI in a subprocess."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from engram.config import load as load_config
from engram.journaling import CapturePolicy
from engram.runtime import Runtime
from engram.sources.capture_writer import journal_capture
from engram.sources.proxy import Proxy, ProxySettings
from engram.sources.server import ServerThread
from engram.store import memories
from engram.store.db import Store
from engram.wire.block import BLOCK_OPEN
from tests.support.agents import agent_bin, agent_env
from tests.support.llm_stub import LLMStub
from tests.support.wait import wait_until

FAKE_KEY = "sk-ant-api03-Tq8wR3eY6uI9oP2aS5dF8gH1jK4lZ7xC0vB3nM6qW9eR2tY5uI8oP1aS4dF7gH0jK3lZ6x"
FAKE_OPENAI = "sk-proj-Zu4Kd9Qm2Xw7Rt5Yp1Lv8Nc3Bh6Gf0Js4Ta9We2Ry7Ui5Op1As3Df8Gh6Jk"
PROJECT = "/home/dev/work/shop-api"
FACT = "The staging database of shop-api listens on port 6543, not the default 5432."


def audits(db: Path) -> list[dict[str, Any] | None]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT recall FROM exchanges ORDER BY id").fetchall()
    except sqlite3.OperationalError:  # not created yet
        rows = []
    finally:
        conn.close()
    return [json.loads(r[0]) if r[0] else None for r in rows]


@pytest.fixture
def stub() -> Any:
    with LLMStub() as server:
        yield server


def test_every_request_records_its_recall_decision(
    stub: LLMStub, store: Store, db_path: Path
) -> None:
    with store.write() as session:
        mid = memories.add(session, FACT, scope=PROJECT).memory.id
    runtime = Runtime(load_config(env={"ENGRAM_DB": str(db_path)}))
    proxy = runtime.proxy(stub.url, inject=True, project_hint=PROJECT)
    assert proxy.recall is not None and proxy.recall.recaller.wait_ready(60)
    server = ServerThread(proxy.app()).start()
    try:
        claude = anthropic.Anthropic(
            base_url=server.url, api_key=FAKE_KEY, max_retries=0,
            http_client=httpx2.Client(trust_env=False, timeout=30),
        )  # fmt: skip
        ask = [{"role": "user", "content": "which port does the staging db use?"}]
        claude.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=ask)
        # the same turn again (a tool loop): the decision is reused
        claude.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=ask)
        claude.messages.create(
            model="claude-haiku-4-5",
            max_tokens=10,
            messages=[{"role": "user", "content": "write a haiku about autumn leaves"}],
        )
        gpt = openai.OpenAI(
            base_url=server.url + "/v1", api_key=FAKE_OPENAI, max_retries=0,
            http_client=httpx2.Client(trust_env=False, timeout=30),
        )  # fmt: skip
        gpt.chat.completions.create(  # harness context only: nothing the user typed
            model="gpt-5",
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "<system-reminder>cwd is /x</system-reminder>"},
            ],
        )
        wait_until(lambda: len(audits(db_path)) == 4, timeout=10, what="4 journaled exchanges")
    finally:
        server.stop()
    first, again, haiku, no_user = audits(db_path)
    assert first is not None and first["outcome"] == "injected"
    assert first["memories"][0]["id"] == mid and 0 < first["memories"][0]["score"] <= 1
    assert again is not None and again["outcome"] == "injected" and again["cached"] is True
    assert haiku is not None and haiku["outcome"] in ("below gate", "no candidates")
    assert no_user == {"outcome": "no user turn"}
    system = stub.requests[0].json["system"]
    assert BLOCK_OPEN in system[-1]["text"] and "6543" in system[-1]["text"]
    assert proxy.stats.recall_outcomes == {"injected": 2, "below gate": 1, "no user turn": 1} or (
        proxy.stats.recall_outcomes.get("no candidates") == 1
    )


def test_a_capture_only_proxy_says_disabled_and_journal_shows_it(
    stub: LLMStub, store: Store, db_path: Path, cli: Any
) -> None:
    proxy = Proxy(
        ProxySettings(upstream=stub.url, inject=False),
        capture=journal_capture(store, PROJECT, CapturePolicy()),
    )
    server = ServerThread(proxy.app()).start()
    try:
        anthropic.Anthropic(
            base_url=server.url, api_key=FAKE_KEY, max_retries=0,
            http_client=httpx2.Client(trust_env=False, timeout=30),
        ).messages.create(
            model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )  # fmt: skip
        wait_until(lambda: len(audits(db_path)) == 1, timeout=10, what="the exchange")
    finally:
        server.stop()
    listing = cli.json("journal")
    assert listing[0]["recall"] == {"outcome": "disabled"}
    assert "off" in cli("journal").stdout
    shown = cli("journal", "show", str(listing[0]["id"])).stdout
    assert "recall" in shown and "disabled" in shown
    status = cli("status").stdout
    assert "recall today: 1 request, 0 with memory (1 disabled) [0% injected]" in status


@pytest.mark.slow
def test_one_shot_claude_run_gets_the_memory_on_its_first_request(
    stub: LLMStub, tmp_path: Path
) -> None:
    """`engram run claude -- -p "<paraphrase>"`: the only request of a one-shot run must
    carry the project's memory (the model loads and a warm-up query is embedded before
    the agent starts), and engram ends with the per-run summary on stderr."""
    claude = agent_bin("claude")
    project = tmp_path / "shop-api"
    project.mkdir()
    db = tmp_path / "engram.db"
    store = Store(db)
    with store.write() as session:
        mid = memories.add(session, FACT, scope=str(project)).memory.id
    store.close()
    env = agent_env(tmp_path / "home", ANTHROPIC_API_KEY=FAKE_KEY, ENGRAM_DB=str(db))
    env["PATH"] = f"{Path(claude).parent}:{env['PATH']}"
    done = subprocess.run(
        [
            sys.executable, "-m", "engram", "run", "claude", "--upstream", stub.url,
            "--analyzer", "none", "--", "-p", "what port is the staging database on?",
        ],
        cwd=project, env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    conversation = [
        r
        for r in stub.requests
        if r.api == "anthropic" and "staging database" in json.dumps(r.json)
    ]
    assert conversation, [r.api for r in stub.requests]
    block = conversation[0].json["system"][-1]["text"]
    assert block.startswith(BLOCK_OPEN) and mid in block and "6543" in block
    summary = done.stderr.strip().splitlines()[-1]
    assert "with memory" in summary and "0 with memory" not in summary, done.stderr[-2000:]
    recorded = [a for a in audits(db) if a and a["outcome"] == "injected"]
    assert recorded and recorded[0]["memories"][0]["id"] == mid
