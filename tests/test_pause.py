"""`engram pause` / `engram resume`: the pause lives in the database, so every process
sees it; a timed pause ends by itself; capture and analysis stop, forwarding does not.
The capture doors under a pause are in tests/test_capture_privacy.py."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from conftest import Cli

from engram import journaling
from engram.store.db import Store
from engram.wire.model import RawRequest
from tests.support.journal import record_request
from tests.support.llm_stub import LLMStub, Reply
from tests.support.wait import wait_until

FAKE_KEY = "sk-ant-api03-Mn3bV6cX9zL2kJ5hG8fD1sA4pO7iU0yT3rE6wQ9mN2bV5cX8zL1kJ4hG7fD0sA3pO6iU9y"


def capture(store: Store, key: str, text: str) -> journaling.Recorded:
    return record_request(store, key, [{"role": "user", "content": text}], reply="Noted.")


def test_pause_resume_and_status(cli: Cli) -> None:
    assert cli.json("status")["paused"] is None
    assert "was not paused" in cli("resume").stdout
    out = cli("pause").stdout
    assert "paused until `engram resume`" in out
    status = cli.json("status")
    assert status["paused"]["until"] is None and status["paused"]["since"]
    assert "PAUSED until `engram resume`" in cli("status").stdout
    timed = cli.json("pause", "--for", "1h30m")  # pausing again replaces the end
    assert timed["paused"] and timed["until"] and timed["since"] == status["paused"]["since"]
    assert "(in 1h29m)" in cli("status").stdout
    ended = cli.json("resume")
    assert ended["paused"] is False and ended["ended"]["since"] == timed["since"]
    assert cli.json("status")["paused"] is None


@pytest.mark.parametrize("bad", ["", "30", "5x", "-5m", "0s", "400d", "1h 30"])
def test_bad_durations_are_config_errors(cli: Cli, bad: str) -> None:
    result = cli("pause", "--for", bad, ok=False)
    assert result.exit_code == 2 and "error: --for must be" in result.stderr


def test_a_timed_pause_ends_by_itself(cli: Cli, store: Store) -> None:
    cli("pause", "--for", "1s")
    assert capture(store, "during", "said while paused").withheld == "paused"
    wait_until(lambda: cli.json("status")["paused"] is None, timeout=5, what="the pause to end")
    recorded = capture(store, "after", "said after the pause")
    assert recorded.created and recorded.status == "pending"


def test_paused_turns_never_come_back_after_resume(cli: Cli, store: Store) -> None:
    """The agent repeats the whole history after `engram resume`: the turns of the
    paused period must not look new then."""
    conversation: list[dict] = []

    def say(key: str, text: str) -> journaling.Recorded:
        conversation.append({"role": "user", "content": text})
        recorded = record_request(store, key, list(conversation), reply=f"re: {text}", session="s1")
        conversation.append(
            {"role": "assistant", "content": [{"type": "text", "text": f"re: {text}"}]}
        )
        return recorded

    say("1", "before the pause")
    cli("pause")
    assert say("2", "the merger is with Initech").withheld == "paused"
    cli("resume")
    say("3", "after the pause")
    texts = [
        t["text"]
        for r in cli.json("journal")
        for t in cli.json("journal", "show", str(r["id"]))["turns"]
    ]
    assert (
        "the merger is with Initech" not in texts and "re: the merger is with Initech" not in texts
    )
    assert "after the pause" in texts and "before the pause" in texts


def test_analysis_stops_while_paused(cli: Cli, store: Store, db_path: Path) -> None:
    capture(store, "c1", "We use pnpm here, never npm.")
    cli("pause")
    with LLMStub() as stub:
        stub.script = Reply(text='engram add --kind preference "Use pnpm, never npm"')
        env = {
            "ANTHROPIC_API_KEY": FAKE_KEY,
            "ENGRAM_ANALYZER_BASE_URL": stub.url,
            "ENGRAM_ANALYZER_RETRIES": "0",
        }
        result = cli("analyze", "--analyzer", "anthropic", ok=False, env=env)
        assert result.exit_code == 1
        assert "error: engram is paused" in result.stderr and "engram resume" in result.stderr
        assert not stub.requests  # nothing was sent to the analyzer either
        from engram.analyzer.schedule import analysis_due

        assert not analysis_due(store, 1, 0.0)  # the daemon and the proxy do not start it
        cli("resume")
        assert analysis_due(store, 1, 0.0)
        report = json.loads(cli("analyze", "--analyzer", "anthropic", "--json", env=env).stdout)
    assert [m["content"] for m in report["added"]] == ["Use pnpm, never npm"]


def test_ingest_says_what_a_pause_withheld(cli: Cli, tmp_path: Path) -> None:
    from mitmproxy import connection, http, io

    flow = http.HTTPFlow(
        connection.Client(peername=("127.0.0.1", 50000), sockname=("127.0.0.1", 8080)),
        connection.Server(address=("api.anthropic.com", 443)),
    )
    flow.request = http.Request.make(
        "POST",
        "https://api.anthropic.com/v1/messages",
        json.dumps(
            {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
        ),
        {"content-type": "application/json"},
    )
    flow.response = http.Response.make(
        200, json.dumps({"content": [{"type": "text", "text": "yo"}], "model": "m"})
    )
    path = tmp_path / "one.mitm"
    with path.open("wb") as fh:
        io.FlowWriter(fh).add(flow)
    cli("pause")
    out = cli("ingest", str(path)).stdout
    assert "0 exchanges journaled" in out and "1 withheld (paused or an ignored project)" in out
    assert cli.json("journal") == []


def test_injection_continues_while_paused_but_nothing_is_logged(cli: Cli, store: Store) -> None:
    from engram import config
    from engram.runtime import Runtime
    from engram.wire.model import Format

    cli("add", "The staging database listens on port 5433")
    cli("pause")
    cfg = config.load()
    cfg.override("store.path", str(store.path))
    recall = Runtime(cfg).proxy_recall(None, lambda task: task())
    body = json.dumps(
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "which port does the staging database use?"}],
        }
    ).encode()
    raw = RawRequest(body=body, path="/v1/messages", host="api.anthropic.com")
    block = wait_until(lambda: recall(body, Format.ANTHROPIC, raw).block, timeout=60, what="recall")
    assert "5433" in block
    conn = sqlite3.connect(store.path)
    events = [a for (a,) in conn.execute("SELECT action FROM events")]
    used = conn.execute("SELECT use_count FROM memories").fetchone()[0]
    conn.close()
    assert "inject" not in events and used == 0
