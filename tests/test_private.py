"""`<private>…</private>`: never journaled, analysed or used as a recall query; the
upstream request is untouched. The mitmweb watcher, addon and flow-file doors are in
tests/test_capture_privacy.py."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx2
import pytest

from engram import journaling
from engram.journaling import CapturePolicy
from engram.sources.capture_writer import journal_capture
from engram.sources.proxy import Proxy, ProxySettings
from engram.sources.server import ServerThread
from engram.store.db import Store
from engram.wire.model import RawRequest, RawResponse, ToolCall, ToolResult, Turn
from engram.wire.private import MARK, scrub_echoes, strip_private, strip_turns
from tests.support.journal import journal_rows
from tests.support.llm_stub import LLMStub
from tests.support.wait import wait_until

FAKE_KEY = "sk-ant-api03-Rt6yU1iO4pA8sD2fG5hJ9kL3zX7cV0bN4mQ8wE2rT6yU1iO5pA9sD3fG7hJ1kL4zX8cV2b"
SYSTEM = "You are a coding agent.\nPrimary working directory: /home/dev/shop\n"


@pytest.mark.parametrize(
    ("text", "kept", "hidden"),
    [
        ("no tags at all", "no tags at all", []),
        ("a <private>secret</private> b", f"a {MARK} b", ["secret"]),
        ("a <PRIVATE >x</ Private> b", f"a {MARK} b", ["x"]),
        ('<private reason="client">q</private> z', f"{MARK} z", ["q"]),
        ("one <private>1</private> two <private>2</private>", f"one {MARK} two {MARK}", ["1", "2"]),
        # nesting counts: the inner closer does not end the outer passage
        ("x <private>a <private>b</private> c</private> d", f"x {MARK} d", None),
        # an opener never closed hides the rest of the text
        ("deploy <private>the key is hunter2-prod and more", f"deploy {MARK}", None),
        # a closer with nothing open hides everything before it
        ("token A1b2C3d4e5 </private> the rest", f"{MARK} the rest", None),
        ("a <privateer> is not a tag", "a <privateer> is not a tag", []),
    ],
)
def test_private_markup_rules(text: str, kept: str, hidden: list[str] | None) -> None:
    out, passages = strip_private(text)
    assert out == kept
    if hidden is not None:
        assert passages == hidden
    for word in ("hunter2", "A1b2C3d4e5", " b "):
        if word.strip() not in kept:
            assert word.strip() not in out


def test_tags_split_across_content_blocks_and_echoes_are_scrubbed() -> None:
    # Blocks of one message are joined before this runs (wire/anthropic.py joins them).
    user = Turn("user", "use <private>db pass Zq9-hunter2-prod\n\nhost 10.0.4.17</private> ok")
    echo = Turn(
        "assistant",
        "Connecting with Zq9-hunter2-prod",
        tool_calls=(ToolCall("t1", "Bash", '{"command": "psql -h 10.0.4.17"}'),),
    )
    tool = Turn("user", "", tool_results=(ToolResult("t1", "connected to 10.0.4.17"),))
    turns, passages = strip_turns([user, echo, tool])
    assert "Zq9" not in turns[0].text and MARK in turns[0].text
    scrubbed = scrub_echoes(turns, passages)
    dump = json.dumps([[t.text, [c.arguments for c in t.tool_calls]] for t in scrubbed])
    dump += json.dumps([r.content for t in scrubbed for r in t.tool_results])
    assert "hunter2" not in dump and "10.0.4.17" not in dump
    assert "Connecting with" in dump and "psql -h" in dump


def _body(messages: list[dict]) -> bytes:
    return json.dumps(
        {"model": "claude-haiku-4-5", "max_tokens": 50, "system": SYSTEM, "messages": messages}
    ).encode()


def test_record_strips_every_role_and_keeps_deltas_exact(store: Store) -> None:
    """The chokepoint every source uses: the same history in the next request does not
    make the stripped turn look new (it hashes the same), and nothing private is kept."""
    first = [{"role": "user", "content": "ship it <private>with token ghp_notreal0Zq</private>"}]

    def reply(text: str) -> dict:
        return {"content": [{"type": "text", "text": text}], "model": "m", "stop_reason": "end"}

    echo = reply("ok: ship it <private>with token ghp_notr")  # the model quoting the user
    second = [
        *first,
        {"role": "assistant", "content": echo["content"]},
        {"role": "user", "content": "thanks"},
    ]
    with store.write() as session:
        for key, messages, answer in (("a", first, echo), ("b", second, reply("ok: thanks"))):
            journaling.record(
                session,
                journaling.Capture(
                    "proxy",
                    key,
                    RawRequest(body=_body(messages), path="/v1/messages", host="api.anthropic.com"),
                    RawResponse(status_code=200, body=json.dumps(answer).encode()),
                ),
                CapturePolicy(),
            )
    conn = sqlite3.connect(store.path)
    rows = [json.loads(t) for (t,) in conn.execute("SELECT turns FROM exchanges ORDER BY id")]
    conn.close()
    texts = [t["text"] for row in rows for t in row]
    assert texts == [f"ship it {MARK}", f"ok: ship it {MARK}", "thanks", "ok: thanks"]


def test_proxy_forwards_private_text_but_never_journals_it(store: Store, db_path: Path) -> None:
    with LLMStub() as stub:
        proxy = Proxy(
            ProxySettings(upstream=stub.url),
            capture=journal_capture(store, None, CapturePolicy()),
        )
        server = ServerThread(proxy.app()).start()
        try:
            client = anthropic.Anthropic(
                base_url=server.url,
                api_key=FAKE_KEY,
                max_retries=0,
                http_client=httpx2.Client(trust_env=False, timeout=30),
            )
            client.messages.create(
                model="claude-haiku-4-5",
                max_tokens=50,
                system=SYSTEM,
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "the client is <private>Globex Corp"},
                            {"type": "text", "text": "budget 1.2M</private>; write the report"},
                        ],
                    }
                ],
            )
            wait_until(lambda: journal_rows(db_path), what="the exchange to be journaled")
        finally:
            server.stop()
            proxy.close()
        upstream = json.dumps(stub.requests[-1].json)
    assert "Globex Corp" in upstream and "<private>" in upstream  # forwarded untouched
    stored = json.dumps(journal_rows(db_path))
    assert "Globex" not in stored and "1.2M" not in stored
    assert "write the report" in stored and MARK in stored


@pytest.fixture
def recall_store(store: Store) -> Iterator[Store]:
    from engram.store import memories

    with store.write() as session:
        memories.add(session, "The staging database listens on port 5433", scope="global")
    yield store


def test_recall_query_never_holds_private_text(recall_store: Store) -> None:
    """The query is logged with the injection and may go to MuninnDB: no private text."""
    from engram import config
    from engram.runtime import Runtime
    from engram.wire.model import Format

    cfg = config.load()
    cfg.override("store.path", str(recall_store.path))
    recall = Runtime(cfg).proxy_recall(None, lambda task: task())
    words = "which port does the staging database use? <private>codename bluefalcon</private>"
    raw = RawRequest(
        body=_body([{"role": "user", "content": words}]),
        path="/v1/messages",
        host="api.anthropic.com",
    )
    block = wait_until(
        lambda: recall(raw.body or b"", Format.ANTHROPIC, raw).block, timeout=60, what="recall"
    )
    assert "5433" in block
    conn = sqlite3.connect(recall_store.path)
    details = [d for (d,) in conn.execute("SELECT detail FROM events WHERE action = 'inject'")]
    conn.close()
    assert details and "staging" in details[0] and "bluefalcon" not in json.dumps(details)
