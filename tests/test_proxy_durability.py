"""A kill -9 right after the agent has its answer loses no exchange (issue 14, minor).

Each exchange is journaled before the response's last bytes are released, so once every
stream has completed on the client's side, nothing is left only in memory. Before, the
capture queue was still being written ~10-200 ms after the streams completed and a
kill -9 in that window lost it (49/50 in the red-team run).
"""

from __future__ import annotations

import signal
import sqlite3
import threading
from pathlib import Path

import anthropic
import httpx2

from tests.support.llm_stub import LLMStub
from tests.support.mitmweb import free_port
from tests.support.proxied import engram_proxy
from tests.support.wait import wait_until

FAKE_KEY = "sk-ant-api03-Dk3wE8rT2yU6iO0pA3sD7fG1hJ4kL8zX2cV5bN9mQ3wE6rT0yU4iO7pA1sD5fG8hJ2kL6zX"
STREAMS = 24


def test_kill_9_after_streams_complete_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    port = free_port()
    with LLMStub() as stub:
        proc = engram_proxy(port, stub.url, db, "--analyzer", "none", "--no-inject")
        try:
            client = anthropic.Anthropic(
                base_url=f"http://127.0.0.1:{port}",
                api_key=FAKE_KEY,
                max_retries=0,
                http_client=httpx2.Client(trust_env=False, timeout=30),
            )

            def ready() -> bool:
                try:
                    client.models.list()
                    return True
                except anthropic.APIConnectionError:
                    return False

            wait_until(ready, timeout=60, what="engram proxy to listen")
            errors: list[BaseException] = []

            def one(n: int) -> None:
                try:
                    with client.messages.stream(
                        model="claude-haiku-4-5",
                        max_tokens=20,
                        messages=[{"role": "user", "content": f"remember item {n}"}],
                    ) as s:
                        assert s.get_final_message().stop_reason == "end_turn"
                except BaseException as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=one, args=(i,)) for i in range(STREAMS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert errors == []
        finally:
            proc.send_signal(signal.SIGKILL)  # at once, as the streams complete
            proc.wait(30)
            assert proc.stderr is not None
            proc.stderr.close()
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT count(*) FROM exchanges").fetchone()[0]
    conn.close()
    assert rows == STREAMS
