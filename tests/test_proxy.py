"""`engram proxy` with the real SDKs as clients and a loopback API as upstream."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx2
import openai
import pytest
import sqlalchemy

from engram.journaling import CapturePolicy
from engram.sources.capture_writer import journal_capture
from engram.sources.proxy import Proxy, ProxySettings
from engram.sources.server import ServerThread
from engram.store.db import Store
from engram.wire.block import BLOCK_OPEN
from tests.support.agents import script_agent
from tests.support.llm_stub import Fail, LLMStub, Reply

FAKE_KEY = "sk-ant-api03-Pq5wE8rT2yU6iO0pA3sD7fG1hJ4kL8zX2cV5bN9mQ3wE6rT0yU4iO7pA1sD5fG8hJ2kL6zX"
SYSTEM = "You are a coding agent.\nPrimary working directory: /home/dev/shop\n"


@pytest.fixture
def stub() -> Iterator[LLMStub]:
    with LLMStub() as server:
        yield server


def start(store: Store, upstream: str, recall=None, **settings) -> tuple[Proxy, ServerThread]:
    proxy = Proxy(
        ProxySettings(upstream=upstream, **settings),
        recall=recall,
        capture=journal_capture(store, None, CapturePolicy()),
    )
    return proxy, ServerThread(proxy.app()).start()


def claude(url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=url,
        api_key=FAKE_KEY,
        max_retries=0,
        http_client=httpx2.Client(trust_env=False, timeout=30),
    )


def journal_rows(db: Path) -> list[dict]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    rows = [dict(r) for r in conn.execute("SELECT * FROM exchanges ORDER BY id")]
    conn.close()
    return rows


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_passthrough_json_and_stream_capture_once(
    stub: LLMStub, store: Store, db_path: Path
) -> None:
    _proxy, server = start(store, stub.url)
    try:
        direct = claude(stub.url).messages.create(
            model="claude-haiku-4-5",
            max_tokens=50,
            system=SYSTEM,
            messages=[{"role": "user", "content": "We use pnpm."}],
        )
        via = claude(server.url).messages.create(
            model="claude-haiku-4-5",
            max_tokens=50,
            system=SYSTEM,
            messages=[{"role": "user", "content": "We use pnpm."}],
            extra_headers={"X-Custom-Trace": "abc123"},
        )
        assert via.content[0].text == direct.content[0].text
        with claude(server.url).messages.stream(
            model="claude-haiku-4-5",
            max_tokens=50,
            system=SYSTEM,
            messages=[{"role": "user", "content": "Stream this please"}],
        ) as s:
            final = s.get_final_message()
        assert final.content[0].text.startswith("ok: Stream this please")
    finally:
        server.stop()
    sent = stub.requests[1]
    assert sent.header("X-Custom-Trace") == "abc123"
    assert sent.json == stub.requests[0].json  # the body passed through unchanged
    rows = journal_rows(db_path)
    assert len(rows) == 2 and {r["source"] for r in rows} == {"proxy"}
    assert [json.loads(r["turns"])[0]["text"] for r in rows] == [
        "We use pnpm.",
        "Stream this please",
    ]
    assert rows[1]["stream"] and json.loads(rows[1]["turns"])[-1]["role"] == "assistant"
    assert FAKE_KEY not in json.dumps(rows)


def test_injection_reaches_upstream_not_journal(stub: LLMStub, store: Store, db_path: Path) -> None:
    seen: list[str] = []

    def recall(body, fmt, raw):
        seen.append(fmt.value)
        return "- The staging database is on port 5433 (m-abcd1234)"

    proxy, server = start(store, stub.url, recall=recall)
    try:
        claude(server.url).messages.create(
            model="claude-haiku-4-5",
            max_tokens=50,
            system=[{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}],
            messages=[{"role": "user", "content": "Which port is staging on?"}],
        )
        oa = openai.OpenAI(
            base_url=server.url + "/v1",
            api_key="sk-proj-" + "a1B2" * 12,
            max_retries=0,
            http_client=httpx2.Client(trust_env=False),
        )
        oa.chat.completions.create(
            model="gpt-5",
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "port?"},
            ],
        )
    finally:
        server.stop()
    assert seen == ["anthropic", "openai-chat"]
    system = stub.requests[0].json["system"]
    assert system[0]["cache_control"] == {"type": "ephemeral"}  # the cached prefix is intact
    assert BLOCK_OPEN in system[-1]["text"] and "5433" in system[-1]["text"]
    chat = stub.requests[1].json["messages"]
    assert chat[0]["content"] == "Be brief." and BLOCK_OPEN in chat[1]["content"]
    assert proxy.stats.injected == 2
    dump = json.dumps(journal_rows(db_path))
    assert "engram-memory" not in dump and "5433" not in dump


def test_fail_open_on_error_and_on_slow_recall(stub: LLMStub, store: Store) -> None:
    release = threading.Event()
    finished = threading.Event()

    def broken(body, fmt, raw):
        raise RuntimeError("embedder exploded")

    def slow(body, fmt, raw):
        release.wait(30)  # far past the 50 ms budget: held until the test lets it go
        finished.set()
        return "late memory"

    for recall in (broken, slow):
        proxy, server = start(store, stub.url, recall=recall, recall_budget_ms=50)
        try:
            claude(server.url).messages.create(
                model="claude-haiku-4-5",
                max_tokens=10,
                messages=[{"role": "user", "content": "hello"}],
            )
            assert not finished.is_set()  # the request went out without waiting for recall
        finally:
            if recall is slow:
                release.set()
            server.stop()
        assert "engram-memory" not in json.dumps(stub.requests[-1].json)  # survives escaping
    assert proxy.stats.recall_timeouts == 1


def test_recall_blocked_by_locked_store_fails_open(
    stub: LLMStub, store: Store, db_path: Path
) -> None:
    store.ensure()

    def recall(body, fmt, raw):
        with store.write() as session:  # waits on the lock held below
            session.execute(sqlalchemy.text("SELECT 1"))
        return "never"

    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    _proxy, server = start(store, stub.url, recall=recall, recall_budget_ms=50)
    try:
        claude(server.url).messages.create(
            model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        server.stop()
    assert "engram-memory" not in json.dumps(stub.requests[-1].json)  # survives escaping


def test_status_and_errors_pass_through(stub: LLMStub, store: Store) -> None:
    stub.script = Fail(429, headers={"retry-after": "7"})
    _proxy, server = start(store, stub.url)
    try:
        with pytest.raises(anthropic.RateLimitError) as err:
            claude(server.url).messages.create(
                model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "x"}]
            )
        assert err.value.response.headers["retry-after"] == "7"
    finally:
        server.stop()


def test_unreachable_upstream_is_a_502_in_the_provider_shape(store: Store) -> None:
    from tests.support.mitmweb import free_port

    _proxy, server = start(store, f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(anthropic.APIStatusError) as err:
            claude(server.url).messages.create(
                model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "x"}]
            )
        assert err.value.status_code == 502
        body = err.value.response.json()
        assert body["type"] == "error" and "unreachable" in body["error"]["message"]
    finally:
        server.stop()


def test_sse_events_arrive_before_the_stream_ends(store: Store) -> None:
    with LLMStub(Reply(text=" ".join(f"w{i}" for i in range(20))), event_delay=0.05) as slow:
        _proxy, server = start(store, slow.url)
        try:
            client = httpx2.Client(trust_env=False, timeout=30)
            started = time.monotonic()
            first = None
            with client.stream(
                "POST",
                server.url + "/v1/messages",
                json={
                    "model": "m",
                    "max_tokens": 50,
                    "stream": True,
                    "messages": [{"role": "user", "content": "go"}],
                },
                headers={"x-api-key": FAKE_KEY},
            ) as response:
                for _chunk in response.iter_bytes():
                    if first is None:
                        first = time.monotonic() - started
            total = time.monotonic() - started
        finally:
            server.stop()
    assert first is not None and total > 0.8
    assert first < total / 3  # streamed through, not buffered to the end


def test_fifty_concurrent_streams(stub: LLMStub, store: Store, db_path: Path) -> None:
    # A longer soak: ENGRAM_TEST_SOAK_SECONDS=300 (CONTRIBUTING.md).
    seconds = float(os.environ.get("ENGRAM_TEST_SOAK_SECONDS", "8"))
    proxy, server = start(store, stub.url, recall=lambda *a: "- remember this (m-abcd1234)")
    errors: list[BaseException] = []
    done = [0]
    deadline = time.monotonic() + seconds

    def worker(n: int) -> None:
        client = claude(server.url)
        try:
            while time.monotonic() < deadline:
                with client.messages.stream(
                    model="claude-haiku-4-5",
                    max_tokens=20,
                    messages=[{"role": "user", "content": f"worker {n}"}],
                ) as s:
                    assert s.get_final_message().content[0].text.startswith("ok:")
                done[0] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    server.stop()
    assert errors == [] and done[0] >= 50
    assert proxy.stats.upstream_errors == 0 and proxy.stats.capture_failed == 0
    assert len(journal_rows(db_path)) == done[0]


FAKE_AGENT = """#!{python}
import os, sys
import anthropic, httpx2
base = os.environ["ANTHROPIC_BASE_URL"]
client = anthropic.Anthropic(base_url=base, api_key="sk-ant-api03-" + "k" * 40,
                             max_retries=0, http_client=httpx2.Client(trust_env=False))
reply = client.messages.create(model="claude-haiku-4-5", max_tokens=20,
                               messages=[{{"role": "user", "content": " ".join(sys.argv[1:])}}])
print("agent got:", reply.content[0].text)
print("upstream:", os.environ["ENGRAM_UPSTREAM"])
sys.exit(3)
"""


def test_engram_run_launches_an_agent_behind_the_proxy(stub: LLMStub, tmp_path: Path) -> None:
    env = script_agent(tmp_path, FAKE_AGENT.format(python=sys.executable))
    env["ANTHROPIC_BASE_URL"] = stub.url
    project = tmp_path / "myproject"
    project.mkdir()
    db = tmp_path / "e.db"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "engram",
            "run",
            "claude",
            "--analyzer",
            "heuristic",
            "--",
            "Remember",
            "that",
            "the",
            "staging",
            "database",
            "runs",
            "on",
            "port",
            "5433.",
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 3, done.stderr
    assert "agent got: ok: Remember that the staging" in done.stdout
    assert f"upstream: {stub.url}" in done.stdout
    rows = journal_rows(db)
    assert len(rows) == 1 and rows[0]["project"] == str(project)
    assert stub.requests[-1].path == "/v1/messages"
    # When the agent exited, engram distilled what it said.
    conn = sqlite3.connect(db)
    learned = conn.execute("SELECT content, scope FROM memories").fetchall()
    conn.close()
    assert learned == [("The staging database runs on port 5433.", str(project))]
    assert rows[0]["status"] == "analyzed"


def test_engram_proxy_analyzes_in_the_background(stub: LLMStub, tmp_path: Path) -> None:
    from tests.support.mitmweb import free_port
    from tests.support.proxied import engram_proxy

    db = tmp_path / "e.db"
    port = free_port()
    proc = engram_proxy(
        port, stub.url, db, "--analyzer", "heuristic", env={"ENGRAM_MITMPROXY_MAX_WAIT": "1"}
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                claude(f"http://127.0.0.1:{port}").messages.create(
                    model="claude-haiku-4-5",
                    max_tokens=20,
                    system="Primary working directory: /srv/app\n",
                    messages=[{"role": "user", "content": "We use pnpm in this repo, not npm."}],
                )
                break
            except anthropic.APIConnectionError:
                time.sleep(0.2)
        learned: list = []
        while time.monotonic() < deadline and not learned:
            time.sleep(0.5)
            if db.exists():
                conn = sqlite3.connect(db)
                learned = conn.execute("SELECT content FROM memories").fetchall()
                conn.close()
        assert learned == [("We use pnpm in this repo, not npm.",)]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


MITM_AGENT = """#!{python}
import os, sys
import requests
# A client that honours HTTP(S)_PROXY, like agents in subscription/OAuth modes.
assert os.environ["NODE_USE_ENV_PROXY"] == "1" and os.path.exists(os.environ["SSL_CERT_FILE"])
for i in range(8):
    r = requests.post("{url}/v1/messages?beta=true", timeout=30, json={{
        "model": "claude-haiku-4-5", "max_tokens": 20,
        "system": "You are a coding agent.",
        "messages": [{{"role": "user", "content": "which port is staging on? try %d" % i}}]}},
        headers={{"x-api-key": "sk-ant-api03-" + "m" * 40,
                  "X-Claude-Code-Session-Id": "mitm-%d" % i}})
    assert r.status_code == 200, r.text
"""


def test_engram_run_mitm_captures_and_injects_through_mitmdump(
    stub: LLMStub, tmp_path: Path
) -> None:
    env = script_agent(tmp_path, MITM_AGENT.format(python=sys.executable, url=stub.url))
    # Recall waits for its warm-up however long a loaded machine takes (not a sleep in the
    # agent): this test is about capture and injection, the budget tests are above.
    env["ENGRAM_PROXY_FIRST_REQUEST_BUDGET_MS"] = env["ENGRAM_PROXY_RECALL_BUDGET_MS"] = "30000"
    project = tmp_path / "shop"
    project.mkdir()
    db = tmp_path / "e.db"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "engram",
            "add",
            "Staging runs on port 5433",
            "--scope",
            str(project),
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    done = subprocess.run(
        [sys.executable, "-m", "engram", "run", "--mitm", "claude"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    rows = journal_rows(db)
    assert len(rows) == 8 and {r["source"] for r in rows} == {"addon"}
    assert {r["project"] for r in rows} == {str(project)}
    systems = [json.dumps(r.json.get("system")) for r in stub.requests[-8:]]
    assert any("engram-memory" in s and "5433" in s for s in systems)
    assert "engram-memory" not in json.dumps(rows)
    assert (tmp_path / "data" / "engram" / "mitmproxy" / "mitmproxy-ca-cert.pem").exists()
