"""`engram mitmproxy` against a real mitmweb, a loopback LLM API and the real SDKs."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx2
import openai
import pytest
import requests
from conftest import Cli, isolate

from tests.support.llm_stub import LLMStub
from tests.support.mitmweb import Mitmweb
from tests.support.wait import wait_until

# Fake, but shaped like real keys so that the redactor must catch them.
FAKE_ANTHROPIC_KEY = (
    "sk-ant-api03-Zq3xT9vLmP2wR7kN4sJ8hD1fG6bY0cV5aE3uI9oQ2tW8eR4yU7iO1pA6s"
    "D3fG9hJ2kL5zX8cV1bN4mQ7wE0rT"
)
FAKE_OPENAI_KEY = "sk-proj-Tq8wE3rY6uI1oP4aS7dF0gH2jK5lZ9xC3vB6nM8qW1eR4tY7uI0oP3aS6dF9gH2jK5lZ"


@pytest.fixture(scope="module")
def stub() -> Iterator[LLMStub]:
    with LLMStub() as server:
        yield server


def http_client(mitm: Mitmweb) -> httpx2.Client:
    return httpx2.Client(proxy=mitm.proxy_url, trust_env=False, timeout=30)


def claude(stub: LLMStub, mitm: Mitmweb) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=stub.url, api_key=FAKE_ANTHROPIC_KEY, http_client=http_client(mitm), max_retries=0
    )


def gpt(stub: LLMStub, mitm: Mitmweb) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=stub.url + "/v1",
        api_key=FAKE_OPENAI_KEY,
        http_client=http_client(mitm),
        max_retries=0,
    )


SYSTEM = "You are a coding agent.\nPrimary working directory: /home/dev/shop\n"


def converse(
    client: anthropic.Anthropic, session: str, turns: list[str], stream: bool = False
) -> None:
    """A multi-turn conversation that repeats its history, as agents do."""
    messages: list[dict] = []
    for text in turns:
        messages.append({"role": "user", "content": text})
        kwargs = dict(
            model="claude-haiku-4-5",
            max_tokens=64,
            system=SYSTEM,
            messages=messages,
            extra_headers={"X-Claude-Code-Session-Id": session},
        )
        if stream:
            with client.messages.stream(**kwargs) as s:
                reply = s.get_final_message()
        else:
            reply = client.messages.create(**kwargs)
        messages.append(
            {
                "role": "assistant",
                "content": [b.model_dump(exclude_none=True) for b in reply.content],
            }
        )


def finished(mitm: Mitmweb, n: int) -> bool:
    """n flows are there and the watcher counts each as finished (for an unstored
    streamed body, once the grace period after its end has passed)."""
    from engram.sources import mitmweb

    flows = mitm.flows()
    return len(flows) >= n and all(mitmweb.is_complete(f) for f in flows)


def watch(cli: Cli, mitm: Mitmweb, *extra: str, ok: bool = True):
    return cli(
        "mitmproxy",
        "--url",
        mitm.url,
        "--token",
        mitm.password,
        "--once",
        "--analyzer",
        "none",
        *extra,
        ok=ok,
    )


def rows(db: Path) -> list[dict]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    out = [dict(r) for r in conn.execute("SELECT * FROM exchanges ORDER BY id")]
    conn.close()
    return out


def all_turn_texts(db: Path) -> list[tuple[str, str]]:
    return [(t["role"], t["text"]) for r in rows(db) for t in json.loads(r["turns"])]


def user_texts(db: Path) -> list[str]:
    """What the user said, in journal order (the stub's replies echo it, so leave them)."""
    return [text for role, text in all_turn_texts(db) if role == "user"]


def flows(mitm: Mitmweb) -> list[dict]:
    s = requests.Session()
    s.trust_env = False
    return s.get(
        mitm.url + "/flows", headers={"Authorization": f"Bearer {mitm.password}"}, timeout=10
    ).json()


def test_sdk_traffic_journaled_once_with_new_turns_only(
    cli: Cli, stub: LLMStub, mitm: Mitmweb, db_path: Path
) -> None:
    converse(claude(stub, mitm), "sess-json", ["We use pnpm here", "Run the tests"])
    converse(claude(stub, mitm), "sess-sse", ["Deploy with make release"], stream=True)
    g = gpt(stub, mitm)
    g.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "chat one"}])
    for _ in g.chat.completions.create(
        model="gpt-5", stream=True, messages=[{"role": "user", "content": "chat streamed"}]
    ):
        pass
    g.responses.create(model="gpt-5", input="responses api call")

    result = watch(cli, mitm)
    assert "Fetched 6 new flows -> 6 LLM requests" in result.stdout
    journal = rows(db_path)
    assert len(journal) == 6
    assert {r["format"] for r in journal} == {"anthropic", "openai-chat", "openai-responses"}
    assert all(r["status"] == "pending" and r["source"] == "mitmweb" for r in journal)
    texts = all_turn_texts(db_path)
    # Each user turn exactly once although the second request repeated the first.
    for words in (
        "We use pnpm here",
        "Run the tests",
        "Deploy with make release",
        "chat one",
        "chat streamed",
        "responses api call",
    ):
        assert sum(words in t for role, t in texts if role == "user") == 1, words
    first = next(r for r in journal if r["conversation"] == "sess-json")
    assert first["project"] == "/home/dev/shop" and first["new_turns"] == 2
    streamed = next(r for r in journal if r["conversation"] == "sess-sse")
    assert streamed["stream"] and json.loads(streamed["turns"])[-1]["role"] == "assistant"
    # No secret reaches the journal.
    dump = json.dumps(journal)
    assert FAKE_ANTHROPIC_KEY not in dump and FAKE_OPENAI_KEY not in dump
    # Captured flows were pruned; a second poll adds nothing.
    assert flows(mitm) == []
    watch(cli, mitm)
    assert len(rows(db_path)) == 6


def test_side_calls_and_non_llm_traffic(
    cli: Cli, stub: LLMStub, mitm: Mitmweb, db_path: Path
) -> None:
    c = claude(stub, mitm)
    c.messages.count_tokens(
        model="claude-haiku-4-5", messages=[{"role": "user", "content": "count me"}]
    )
    c.messages.create(
        model="claude-haiku-4-5",
        max_tokens=10,
        messages=[
            {
                "role": "user",
                "content": "Your task is to create a detailed summary of the conversation so far",
            }
        ],
    )
    s = requests.Session()
    s.trust_env = False
    s.get(stub.url + "/health", proxies=mitm.proxies())  # not an LLM call: never journaled
    watch(cli, mitm)
    journal = rows(db_path)
    assert sorted(r["kind"] for r in journal) == ["side-call", "side-call"]
    assert all(r["status"] == "skipped" and r["turns"] == "[]" for r in journal)
    assert len(flows(mitm)) == 1  # the GET stays: engram deletes only what it captured


def test_no_prune_cursor_survives_restart(
    cli: Cli, stub: LLMStub, mitm: Mitmweb, db_path: Path
) -> None:
    c = claude(stub, mitm)
    converse(c, "s1", ["one", "two"])
    watch(cli, mitm, "--no-prune")
    assert len(rows(db_path)) == 2 and len(flows(mitm)) == 2
    result = watch(cli, mitm, "--no-prune")  # a restarted watcher: nothing new
    assert "Fetched" not in result.stdout
    converse(c, "s2", ["three"])
    result = watch(cli, mitm, "--no-prune")
    assert "Fetched 1 new flows" in result.stdout
    assert len(rows(db_path)) == 3


def test_mitmweb_restart_loses_and_duplicates_nothing(
    cli: Cli, stub: LLMStub, mitm: Mitmweb, db_path: Path
) -> None:
    c = claude(stub, mitm)
    converse(c, "r1", ["before restart"])
    watch(cli, mitm, "--no-prune")
    mitm.restart()  # same ports, every flow gone, new ids from now on
    converse(claude(stub, mitm), "r1", ["before restart", "after restart"])
    watch(cli, mitm, "--no-prune")
    assert user_texts(db_path) == ["before restart", "after restart"]
    # The agent re-sent its first request after the restart: journaled, nothing new in it.
    assert [r["new_turns"] for r in rows(db_path)] == [2, 0, 2]
    assert [r["status"] for r in rows(db_path)] == ["pending", "skipped", "pending"]


def test_wrong_token_is_one_clear_message(cli: Cli, mitm: Mitmweb) -> None:
    result = cli("mitmproxy", "--url", mitm.url, "--token", "wrong", "--once", ok=False)
    assert result.exit_code == 1
    assert "refused the token" in result.stderr and "--token" in result.stderr
    assert "web_password" in result.stderr
    result = cli("mitmproxy", "--url", mitm.url, "--once", ok=False)
    assert "requires a token" in result.stderr


def test_mitmweb_not_running(cli: Cli) -> None:
    from tests.support.mitmweb import free_port

    result = cli(
        "mitmproxy", "--url", f"http://127.0.0.1:{free_port()}", "--token", "x", "--once", ok=False
    )
    assert result.exit_code == 1 and "not reachable" in result.stdout + result.stderr


def test_streamed_body_not_stored_warns_once_and_keeps_request(
    cli: Cli, stub: LLMStub, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    from engram.sources import mitmweb

    monkeypatch.setattr(mitmweb, "UNSTORED_GRACE", 0.3)
    # Streaming without storing: what a user's own streaming addon does without engram's.
    own_addon = db_path.parent / "stream_only.py"
    own_addon.write_text(
        "class S:\n    def responseheaders(self, flow):\n"
        "        flow.response.stream = True\n\naddons = [S()]\n"
    )
    with Mitmweb(addon=False, extra=["-s", str(own_addon)]) as m:
        converse(claude(stub, m), "ns", ["first question"], stream=True)
        wait_until(lambda: finished(m, 1), what="the streamed flow to count as finished")
        result = watch(cli, m)
        assert (
            result.stdout.count("store_streamed_bodies") + result.stdout.count("engram addon-path")
            >= 1
        )
        converse(claude(stub, m), "ns2", ["second question"], stream=True)
        wait_until(lambda: finished(m, 1), what="the second flow to count as finished")
        again = watch(cli, m)
        assert "addon-path" not in again.stdout  # once only
    journal = rows(db_path)
    assert len(journal) == 2
    assert all("not stored" in r["error"] for r in journal)
    assert user_texts(db_path) == ["first question", "second question"]


def test_body_limit_and_garbage_bodies(
    cli: Cli, stub: LLMStub, mitm: Mitmweb, db_path: Path
) -> None:
    s = requests.Session()
    s.trust_env = False
    s.post(stub.url + "/v1/messages", data=b"\xff\xfe not json", proxies=mitm.proxies())
    s.post(
        stub.url + "/v1/messages",
        json={"model": "m", "messages": [{"role": "user", "content": "x" * 5000}]},
        proxies=mitm.proxies(),
    )
    cli(
        "mitmproxy",
        "--url",
        mitm.url,
        "--token",
        mitm.password,
        "--once",
        "--analyzer",
        "none",
        env={"ENGRAM_MITMPROXY_BODY_LIMIT_MB": "0.002"},
    )
    journal = rows(db_path)
    assert len(journal) == 2
    assert all(r["status"] == "failed" and r["error"] for r in journal)
    assert any("exceeds" in r["error"] for r in journal)
    failed = cli.json("journal", "--failed")
    assert len(failed) == 2


def test_journal_cli_contract(cli: Cli, stub: LLMStub, mitm: Mitmweb) -> None:
    converse(claude(stub, mitm), "jc", ["remember the port is 5433"])
    watch(cli, mitm)
    (row,) = cli.json("journal")
    for key in (
        "id",
        "source",
        "source_key",
        "kind",
        "format",
        "model",
        "conversation",
        "project",
        "new_turns",
        "status",
        "error",
        "captured_at",
    ):
        assert key in row
    assert (row["source"], row["kind"], row["status"]) == ("mitmweb", "conversation", "pending")
    shown = cli("journal", "show", str(row["id"])).stdout
    assert "remember the port is 5433" in shown
    assert cli.json("journal", "show", str(row["id"]))["turns"][0]["role"] == "user"
    assert "no exchange" in cli.fail("journal", "show", "999").stderr


@pytest.fixture(scope="module")
def flow_file(stub: LLMStub, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A flow file as mitmweb's save_stream_file writes it: one two-turn conversation,
    recorded once for the module (read-only for the tests, which copy it)."""
    home = tmp_path_factory.mktemp("flowfile-home")
    dump = home / "flows.mitm"
    with pytest.MonkeyPatch.context() as mp:
        isolate(mp, home)
        with Mitmweb(extra=["--set", f"save_stream_file={dump}"]) as m:
            converse(claude(stub, m), "ff", ["alpha", "beta"])
    assert dump.exists() and dump.stat().st_size > 0
    return dump.read_bytes()


def test_ingest_flow_file_once(cli: Cli, flow_file: bytes, tmp_path: Path, db_path: Path) -> None:
    dump = tmp_path / "flows.mitm"
    dump.write_bytes(flow_file)
    first = cli.json("ingest", str(dump))
    assert (first["llm"], first["captured"]) == (2, 2)
    again = cli.json("ingest", str(dump))
    assert (again["captured"], again["duplicates"]) == (0, 2)
    assert user_texts(db_path) == ["alpha", "beta"]


def test_follow_flow_file_with_partial_tail(
    cli: Cli, flow_file: bytes, tmp_path: Path, db_path: Path
) -> None:
    whole = flow_file
    growing = tmp_path / "growing.mitm"
    growing.write_bytes(whole[: len(whole) - 40])  # the second flow is cut off
    args = ("mitmproxy", "--flow-file", str(growing), "--once", "--analyzer", "none")
    cli(*args)
    assert user_texts(db_path) == ["alpha"]
    assert len(rows(db_path)) == 1
    growing.write_bytes(whole)  # mitmdump finished writing it
    cli(*args)
    cli(*args)
    assert len(rows(db_path)) == 2
    assert user_texts(db_path) == ["alpha", "beta"]


def test_addon_path_is_loadable(cli: Cli) -> None:
    path = Path(cli("addon-path").stdout.strip())
    assert path.is_file() and "EngramAddon" in path.read_text()


def test_lone_surrogates_and_odd_text_are_stored(store) -> None:
    """JSON may escape lone surrogates; SQLite cannot store them as UTF-8."""
    from engram import journaling
    from engram.journaling import CapturePolicy
    from engram.store import journal
    from engram.wire.model import RawRequest, RawResponse

    body = (
        b'{"model":"m","system":"Primary working directory: /p\\ud800","messages":'
        b'[{"role":"user","content":"lone \\ud83d surrogate"}]}'
    )
    reply = b'{"content":[{"type":"text","text":"ok \\udc00"}],"model":"m"}'
    with store.write() as session:
        recorded = journaling.record(
            session,
            journaling.Capture(
                "proxy",
                "k1",
                RawRequest(body=body, path="/v1/messages", host="api.anthropic.com"),
                RawResponse(status_code=200, body=reply),
            ),
            CapturePolicy(),
        )
    assert recorded.status == "pending" and recorded.new_turns == 2
    with store.read() as conn:
        row = journal.get_exchange(conn, recorded.id)
    assert row["project"] == "/p\ufffd"
    assert row["turns"][0]["text"] == "lone \ufffd surrogate"
