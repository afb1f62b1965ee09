"""Upstream failures reach the agent at once, as failures (issue 14.1).

Raw TCP upstreams (tests/support/raw_upstream.py) produce the byte-level faults a real
network gives; the real `anthropic` and `openai` SDKs are the clients. What must hold:
- before the response started (nothing sent to the agent yet): a 502 in the provider's
  shape, which the SDKs report as an API error;
- after it started: the agent's connection is aborted, so the SDK raises a transport error
  at once: never a clean end of an SSE stream with half an answer, never a hang on a
  `Content-Length` body;
- when the agent goes away, the upstream request is closed at once.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from tests.support.expect import call_fails
from tests.support.llm_formats import Reply, Turn, anthropic_events, anthropic_json, chat_events
from tests.support.proxied import journal_rows
from tests.support.raw_upstream import (
    SSE_HEAD,
    Close,
    RawUpstream,
    Reset,
    Send,
    Stall,
    chunk,
    http_head,
)
from tests.support.wait import wait_until

FAKE_KEY = "sk-ant-api03-Zr7wE8rT2yU6iO0pA3sD7fG1hJ4kL8zX2cV5bN9mQ3wE6rT0yU4iO7pA1sD5fG8hJ2kL6zX"
OPENAI_KEY = "sk-proj-" + "Qm4t" * 12
# A call that has not returned after this long is hung: SDK timeouts are far longer.
HANG = 20.0

_ids = itertools.count(1)


def _turn(text: str) -> Turn:
    return Turn("claude-haiku-4-5", Reply(text=text), 12, 30, lambda p: f"{p}{next(_ids):06d}")


ANTHROPIC_EVENTS = anthropic_events(_turn("The staging database listens on port 5433 today."))


def claude(url: str, timeout: float = 120) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=url,
        api_key=FAKE_KEY,
        max_retries=0,
        http_client=httpx2.Client(trust_env=False, timeout=timeout),
    )


def finishes(call: Callable[[], Any], within: float = HANG) -> Any:
    """Run `call` on a thread; fail the test if it has not finished (returned or raised)
    `within` seconds: the behaviour under test is "does not hang"."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(within)
    assert not thread.is_alive(), f"the call hung for {within:g} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def stream_text(url: str) -> Any:
    with claude(url).messages.stream(
        model="claude-haiku-4-5",
        max_tokens=50,
        messages=[{"role": "user", "content": "Which port is staging on?"}],
    ) as s:
        return s.get_final_message()


def create(url: str) -> Any:
    return claude(url).messages.create(
        model="claude-haiku-4-5",
        max_tokens=50,
        messages=[{"role": "user", "content": "Which port is staging on?"}],
    )


def test_reset_mid_sse_stream_is_a_transport_error_not_a_clean_end(
    proxied: Any, db_path: Path
) -> None:
    # Before the fix the SDK returned stop_reason=None and half the text.
    script = [Send(SSE_HEAD), *(Send(chunk(e)) for e in ANTHROPIC_EVENTS[:5]), Reset()]
    with RawUpstream(script) as up:
        proxy, url = proxied(up.url)
        with call_fails():
            finishes(lambda: stream_text(url))
    assert proxy.stats.upstream_errors == 1
    rows = wait_until(lambda: journal_rows(db_path), what="the interrupted exchange journaled")
    assert len(rows) == 1 and "interrupted" in (rows[0]["error"] or "")


def test_fin_mid_chunked_stream_is_a_transport_error(proxied: Any) -> None:
    script = [Send(SSE_HEAD), *(Send(chunk(e)) for e in ANTHROPIC_EVENTS[:4]), Close()]
    with RawUpstream(script) as up:
        _proxy, url = proxied(up.url)
        with call_fails():
            finishes(lambda: stream_text(url))


def test_reset_mid_content_length_body_fails_at_once_instead_of_hanging(proxied: Any) -> None:
    # Before the fix the agent waited for the rest of the body until its own timeout.
    body = json.dumps(anthropic_json(_turn("The staging database listens on 5433."))).encode()
    head = http_head(
        200, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    with RawUpstream([Send(head + body[: len(body) // 2]), Reset()]) as up:
        _proxy, url = proxied(up.url)
        with call_fails():
            finishes(lambda: create(url))


def test_fin_mid_content_length_body_fails_at_once(proxied: Any) -> None:
    body = json.dumps(anthropic_json(_turn("The staging database listens on 5433."))).encode()
    head = http_head(
        200, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    with RawUpstream([Send(head + body[:40]), Close()]) as up:
        _proxy, url = proxied(up.url)
        with call_fails():
            finishes(lambda: create(url))


@pytest.mark.parametrize("ending", [Reset(), Close()], ids=["reset", "fin"])
def test_failure_after_headers_before_any_body_is_a_502_in_the_provider_shape(
    proxied: Any, ending: Any
) -> None:
    head = http_head(200, [("Content-Type", "application/json"), ("Content-Length", "500")])
    with RawUpstream([Send(head), ending]) as up:
        proxy, url = proxied(up.url)
        with pytest.raises(anthropic.APIStatusError) as err:
            finishes(lambda: create(url))
    assert err.value.status_code == 502
    assert err.value.response.json()["type"] == "error"
    assert proxy.stats.upstream_errors == 1


def test_reset_before_headers_is_a_502(proxied: Any) -> None:
    with RawUpstream([Reset()]) as up:
        _proxy, url = proxied(up.url)
        with pytest.raises(anthropic.APIStatusError) as err:
            finishes(lambda: create(url))
    assert err.value.status_code == 502


def test_openai_sdk_sees_a_reset_mid_chat_stream(proxied: Any) -> None:
    events = chat_events(_turn("Staging is on port 5433, the replica on 5434."), False)
    script = [Send(SSE_HEAD), *(Send(chunk(e)) for e in events[:3]), Reset()]
    with RawUpstream(script) as up:
        _proxy, url = proxied(up.url)
        client = openai.OpenAI(
            base_url=url + "/v1",
            api_key=OPENAI_KEY,
            max_retries=0,
            http_client=httpx2.Client(trust_env=False, timeout=120),
        )

        def consume() -> str:
            stream = client.chat.completions.create(
                model="gpt-5",
                stream=True,
                messages=[{"role": "user", "content": "Which port is staging on?"}],
            )
            return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

        with call_fails():
            finishes(consume)


def test_when_the_agent_goes_away_the_upstream_request_is_closed_at_once(proxied: Any) -> None:
    # Before the fix the upstream socket stayed open until the proxy's read timeout (600 s).
    script = [Send(SSE_HEAD), Send(chunk(ANTHROPIC_EVENTS[0])), Stall()]
    with RawUpstream(script) as up:
        _proxy, url = proxied(up.url)
        client = httpx2.Client(trust_env=False, timeout=30)
        with client.stream(
            "POST",
            url + "/v1/messages",
            json={"model": "m", "max_tokens": 5, "stream": True, "messages": []},
            headers={"x-api-key": FAKE_KEY},
        ) as response:
            next(response.iter_bytes())  # the stream has started ...
        client.close()  # ... and the agent hangs up
        wait_until(
            lambda: up.connections and up.connections[0].peer_closed_at,
            timeout=10,
            what="the proxy to close its upstream connection",
        )
