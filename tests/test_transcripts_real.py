"""The real agent CLIs against the loopback stand-in: their transcripts, read by engram,
journal every turn once, whether the proxy captured the same session or not, and the
follower survives being killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engram.journaling import CapturePolicy
from engram.sources.capture_writer import journal_capture
from engram.sources.proxy import Proxy, ProxySettings
from engram.sources.server import ServerThread
from engram.store.db import Store
from engram.wire.text import user_words
from tests.conftest import Cli
from tests.support.agents import (
    agent_bin,
    agent_env,
    codex_provider_args,
    gemini_api_key_mode,
    qwen_openai_args,
)
from tests.support.llm_formats import last_user_text, response_schema
from tests.support.llm_stub import LLMStub, Reply, ToolUse
from tests.support.wait import wait_until
from tests.transcript_helpers import rows

pytestmark = pytest.mark.slow

ANTHROPIC_KEY = "sk-ant-api03-Wq3eR5tY7uI9oP1aS3dF5gH7jK9lZ2xC4vB6nM8qW0eR2tY4uI6oP8aS1dF3gH5jK7"
OPENAI_KEY = "sk-proj-" + "Hj4kL6zX8cV0bN2mQ4wE6rT8yU0iO2pA4sD6fG8hJ0kL2zX4cV6bN8mQ0wE2rT4yU6i"
GEMINI_KEY = "AIzaSyB" + "r7T9u1W3y5A7c9E1g3I5k7M9o1Q3s5U7w9"


def script(project: Path) -> Any:
    def reply(rec: Any) -> Reply | None:
        body = rec.json if isinstance(rec.json, dict) else {}
        if response_schema(body) is not None:
            return None
        turns = body.get("messages") or body.get("contents") or body.get("input") or []
        last = json.dumps(turns[-1]) if turns else ""
        if any(k in last for k in ("tool_result", "functionResponse", "function_call_output")):
            return Reply("The notes say the build uses make.")
        if "read notes" in last_user_text(body):
            call = ToolUse("Read", {"file_path": str(project / "notes.txt")})
            return Reply("Let me read it.", tool_calls=[call], thinking="I should look")
        return None

    return reply


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "shop"
    path.mkdir()
    (path / "notes.txt").write_text("the build uses make\n")
    return path


@pytest.fixture
def stub(project: Path) -> Iterator[LLMStub]:
    with LLMStub(script(project)) as server:
        yield server


def claude(prompt: str, project: Path, base_url: str, session: str | None = None) -> str:
    env = agent_env(
        Path.home(), ANTHROPIC_BASE_URL=base_url, ANTHROPIC_API_KEY=ANTHROPIC_KEY, PWD=str(project)
    )
    argv = [str(agent_bin("claude")), "-p", prompt, "--output-format", "json"]
    argv += ["--allowedTools", "Read"] + (["--resume", session] if session else [])
    done = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return str(json.loads(done.stdout)["session_id"])


def said(db: Path) -> Counter[str]:
    """How often each user text was journaled, over every source."""
    texts = (t["text"] for r in rows(db) for t in r["turns"] if t["role"] == "user")
    return Counter(words for words in map(user_words, texts) if words)


def follower(db: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ENGRAM_TRANSCRIPTS_INTERVAL": "0.2"}
    argv = [sys.executable, "-m", "engram", "--db", str(db), "ingest", "--agent", "claude"]
    return subprocess.Popen(
        [*argv, "--follow", "--no-analyze", "--quiet"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_claude_code_through_the_proxy_and_its_transcript_is_journaled_once(
    cli: Cli, stub: LLMStub, project: Path, db_path: Path
) -> None:
    store = Store(db_path)
    store.ensure()
    proxy = Proxy(
        ProxySettings(upstream=stub.url), capture=journal_capture(store, None, CapturePolicy())
    )
    server = ServerThread(proxy.app()).start()
    try:
        session = claude("We use pytest. Remember that.", project, server.url)
        claude("please read notes.txt", project, server.url, session)
        # One request per model call: the prompt, the tool call, the answer after it.
        wait_until(lambda: len(rows(db_path, "proxy")) >= 3, what="the proxy's captures")
    finally:
        server.stop()
    proxy_rows = rows(db_path, "proxy")
    assert {r["conversation"] for r in proxy_rows} == {session}

    # The same session read from its transcript adds no turn.
    totals = cli.json("ingest", "--agent", "claude", "--no-analyze")
    assert totals["exchanges"] == 3 and totals["turns"] == 0
    from_transcript = rows(db_path, "transcript")
    assert {r["status"] for r in from_transcript} == {"skipped"}
    assert {r["conversation"] for r in from_transcript} == {session}
    assert {r["project"] for r in rows(db_path)} == {str(project)}
    assert said(db_path) == {"We use pytest. Remember that.": 1, "please read notes.txt": 1}
    calls = [c["name"] for r in rows(db_path) for t in r["turns"] for c in t.get("tool_calls", [])]
    assert calls == ["Read"]

    # Without the proxy, the follower journals the next turns; killed and restarted, it
    # loses nothing and repeats nothing.
    running = follower(db_path)
    try:
        claude("we deploy with ansible", project, stub.url, session)
        wait_until(lambda: "we deploy with ansible" in said(db_path), 120, what="the follower")
        running.send_signal(signal.SIGKILL)
        running.wait(10)
        claude("the linter is ruff", project, stub.url, session)
        running = follower(db_path)
        wait_until(lambda: "the linter is ruff" in said(db_path), 120, what="the restart")
        running.send_signal(signal.SIGTERM)
        assert running.wait(20) == 0, running.stderr.read().decode() if running.stderr else ""
    finally:
        if running.poll() is None:
            running.kill()
            running.wait(10)
    assert set(said(db_path).values()) == {1}
    assert len(said(db_path)) == 4
    last = rows(db_path, "transcript")[-1]
    assert [t["role"] for t in last["turns"]] == ["user", "assistant"]
    assert last["status"] == "pending" and last["project"] == str(project)


def _codex(prompt: str, project: Path, base_url: str, resume: bool = False) -> None:
    provider = codex_provider_args(base_url)
    argv = [str(agent_bin("codex")), "exec", "--skip-git-repo-check", *provider]
    argv += ["resume", "--last", prompt] if resume else [prompt]
    env = agent_env(Path.home(), OPENAI_API_KEY=OPENAI_KEY, PWD=str(project))
    done = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_codex_gemini_and_qwen_sessions(
    cli: Cli, stub: LLMStub, project: Path, db_path: Path
) -> None:
    home = Path.home()
    gemini_api_key_mode(home)
    gemini_env = agent_env(
        home,
        GEMINI_API_KEY=GEMINI_KEY,
        GOOGLE_GEMINI_BASE_URL=stub.url,
        GEMINI_CLI_TRUST_WORKSPACE="true",
        PWD=str(project),
    )
    qwen_env = agent_env(home, OPENAI_API_KEY=OPENAI_KEY, PWD=str(project))
    qwen_flags = qwen_openai_args(stub.url, OPENAI_KEY)
    slow = [  # started first, run while Codex goes through the proxy
        subprocess.Popen(
            [str(agent_bin("gemini")), "-p", "gemini: we use pnpm"],
            cwd=project,
            env=gemini_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        ),
        subprocess.Popen(
            [str(agent_bin("qwen")), *qwen_flags, "-p", "qwen: we use poetry"],
            cwd=project,
            env=qwen_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        ),
    ]
    store = Store(db_path)
    store.ensure()
    proxy = Proxy(
        ProxySettings(upstream=stub.url), capture=journal_capture(store, None, CapturePolicy())
    )
    server = ServerThread(proxy.app()).start()
    try:
        _codex("codex: we use uv", project, server.url)
        _codex("codex: and ruff", project, server.url, resume=True)
        wait_until(lambda: len(rows(db_path, "proxy")) >= 2, what="the proxy's captures")
    finally:
        server.stop()
    for process in slow:
        _out, err = process.communicate(timeout=180)
        assert process.returncode == 0, err[-2000:]

    # The sessions ended a while ago: a file's last exchange is taken once it is quiet
    # (Gemini CLI rewrites its last message when tool calls are added to it).
    quiet = time.time() - 60
    for path in home.rglob("*.jsonl"):
        os.utime(path, (quiet, quiet))
    totals = cli.json("ingest", "--agent", "all", "--no-analyze")
    assert totals["files"] == 3
    by_format = {(r["source"], r["format"]) for r in rows(db_path)}
    assert ("transcript", "gemini") in by_format and ("transcript", "openai-responses") in by_format
    # Codex: the thread id is the proxy's conversation key, so its turns are there once.
    assert said(db_path)["codex: we use uv"] == 1 and said(db_path)["codex: and ruff"] == 1
    assert said(db_path)["gemini: we use pnpm"] == 1 and said(db_path)["qwen: we use poetry"] == 1
    assert {r["project"] for r in rows(db_path, "transcript")} == {str(project)}
    assert cli.json("ingest", "--agent", "all", "--no-analyze")["exchanges"] == 0
