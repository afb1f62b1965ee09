"""The addon under `engram run --mitm`: upstream failures reach the agent as failures,
and journaling errors are shown instead of vanishing into mitmdump's stdout."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx2
import pytest
from conftest import isolate

from engram.sources.launcher import Interceptor, start_interceptor
from tests.support.agents import script_agent
from tests.support.expect import call_fails
from tests.support.llm_stub import LLMStub
from tests.support.raw_upstream import SSE_HEAD, RawUpstream, Reset, Send, chunk, http_head
from tests.test_proxy_failures import ANTHROPIC_EVENTS, _turn, finishes

pytestmark = pytest.mark.slow  # real mitmdumps

FAKE_KEY = "sk-ant-api03-Wq8wE8rT2yU6iO0pA3sD7fG1hJ4kL8zX2cV5bN9mQ3wE6rT0yU4iO7pA1sD5fG8hJ2kL6zX"


@pytest.fixture(scope="module")
def interceptor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Interceptor]:
    """One mitmdump for the module's failure tests (each brings its own upstream)."""
    tmp = tmp_path_factory.mktemp("interceptor")
    with pytest.MonkeyPatch.context() as mp:
        isolate(mp, tmp / "home")
        interceptor = start_interceptor(str(tmp), tmp / "e.db", inject=False, confdir=tmp / "mitm")
    try:
        yield interceptor
    finally:
        interceptor.stop()


def claude_via(mitm: Interceptor, base: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=base,
        api_key=FAKE_KEY,
        max_retries=0,
        http_client=httpx2.Client(
            proxy=f"http://127.0.0.1:{mitm.port}", trust_env=False, timeout=120
        ),
    )


def test_reset_mid_stream_through_the_addon_is_a_transport_error(interceptor: Interceptor) -> None:
    script = [Send(SSE_HEAD), *(Send(chunk(e)) for e in ANTHROPIC_EVENTS[:5]), Reset()]
    with RawUpstream(script) as up:
        client = claude_via(interceptor, up.url)

        def stream() -> object:
            with client.messages.stream(
                model="claude-haiku-4-5",
                max_tokens=20,
                messages=[{"role": "user", "content": "Which port is staging on?"}],
            ) as s:
                return s.get_final_message()

        with call_fails():
            finishes(stream)


def test_reset_mid_body_through_the_addon_fails_at_once(interceptor: Interceptor) -> None:
    from tests.support.llm_formats import anthropic_json

    body = json.dumps(anthropic_json(_turn("Staging listens on 5433."))).encode()
    head = http_head(
        200, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    with RawUpstream([Send(head + body[:30]), Reset()]) as up:
        client = claude_via(interceptor, up.url)
        with call_fails():
            finishes(
                lambda: client.messages.create(
                    model="claude-haiku-4-5",
                    max_tokens=20,
                    messages=[{"role": "user", "content": "Which port is staging on?"}],
                )
            )


AGENT = """#!{python}
import os, sys
import requests
for i in range(3):
    r = requests.post("{url}/v1/messages", timeout=30, json={{
        "model": "claude-haiku-4-5", "max_tokens": 20,
        "messages": [{{"role": "user", "content": "which port is staging on? %d" % i}}]}},
        headers={{"x-api-key": "sk-ant-api03-" + "m" * 40}})
    assert r.status_code == 200, r.text
print("agent done")
"""


def test_journaling_errors_under_engram_run_mitm_are_shown(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    with LLMStub() as stub:
        env = script_agent(tmp_path, AGENT.format(python=sys.executable, url=stub.url))
        subprocess.run(
            [sys.executable, "-m", "engram", "db", "upgrade"],
            env=env,
            check=True,
            capture_output=True,
        )
        conn = sqlite3.connect(db)  # every journal write fails, as on a full disk
        conn.execute(
            "CREATE TRIGGER full BEFORE INSERT ON exchanges "
            "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
        conn.commit()
        conn.close()
        done = subprocess.run(
            [sys.executable, "-m", "engram", "run", "--mitm", "--analyzer", "none", "claude"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert done.returncode == 0, done.stderr
    assert "agent done" in done.stdout  # the agent itself was not disturbed
    assert done.stderr.count("could not journal an exchange") == 1  # said once ...
    assert "disk is full" in done.stderr
    assert "3 exchanges could not be journaled" in done.stderr  # ... and counted
    assert "which port" not in done.stderr  # no conversation text in the message
