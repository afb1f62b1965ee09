"""Analyzer token efficiency on a 40-request Claude Code-shaped session.

Every request of the session repeats the whole growing history (and ~60 KB of tool
definitions), as Claude Code's do. engram journals only the new turns and sends the
analyzer those, in batches of 10 (the watcher's default); the naive approach sends each
request body. Tokens are counted the same way on both sides (the loopback API's
estimate: bytes / 4), through the real `anthropic` SDK. Target: <= 20% of naive.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).parent))
from _util import print_table, verdict
from wirefixtures import claude_code_request

from engram import journaling
from engram.analyzer.backends import AnthropicBackend
from engram.analyzer.runner import Analyzer
from engram.config import AnalyzerConfig
from engram.journaling import CapturePolicy
from engram.store.db import Store
from engram.wire.model import RawRequest, RawResponse
from tests.support.llm_stub import LLMStub, Reply

REQUESTS = 40
BATCH = 10
FAKE_KEY = "sk-ant-api03-" + "bench" * 16


def session() -> list[tuple[dict, dict]]:
    """(request body, response body) pairs; each reply reappears in the next request."""
    bodies = [claude_code_request(n_messages=3 + 2 * k) for k in range(REQUESTS + 1)]
    pairs = []
    for k in range(REQUESTS):
        body = bodies[k]
        following = bodies[k + 1]["messages"]
        reply = (
            following[len(body["messages"])]
            if len(following) > len(body["messages"])
            else {"role": "assistant", "content": [{"type": "text", "text": "Done."}]}
        )
        response = {
            "id": f"msg_{k}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": reply["content"],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 1, "output_tokens": 1},
        }
        pairs.append((body, response))
    return pairs


def main() -> None:
    pairs = session()
    naive_tokens = sum(len(json.dumps(body).encode()) // 4 for body, _ in pairs)
    with tempfile.TemporaryDirectory() as tmp, LLMStub(Reply(text="NONE")) as stub:
        store = Store(Path(tmp) / "bench.db")
        settings = AnalyzerConfig()
        backend = AnthropicBackend(
            api_key=FAKE_KEY,
            model=settings.model,
            base_url=stub.url,
            timeout=30,
            retries=0,
            max_output_tokens=256,
        )
        analyzer = Analyzer(store, backend, settings)
        for k, (body, response) in enumerate(pairs):
            request = RawRequest(
                body=json.dumps(body).encode(),
                path="/v1/messages?beta=true",
                host="api.anthropic.com",
                timestamp_start=1000.0 + k,
            )
            with store.write() as session_:
                journaling.record(
                    session_,
                    journaling.Capture(
                        "proxy",
                        f"bench-{k}",
                        request,
                        RawResponse(status_code=200, body=json.dumps(response).encode()),
                    ),
                    CapturePolicy(),
                )
            if (k + 1) % BATCH == 0:
                analyzer.run()
        analyzer.run()
        conn = sqlite3.connect(store.path)
        runs, engram_tokens = conn.execute(
            "SELECT count(*), sum(input_tokens + cache_read_tokens) FROM analyzer_runs"
        ).fetchone()
        stored_turns = conn.execute("SELECT sum(new_turns) FROM exchanges").fetchone()[0]
        conn.close()
    share = 100 * engram_tokens / naive_tokens
    print_table(
        f"analyzer token efficiency ({REQUESTS}-request Claude Code-shaped session)",
        [
            ("naive: every request body to the analyzer", f"{naive_tokens:,} tokens", "", ""),
            ("engram: new turns only, batches of 10", f"{engram_tokens:,} tokens", "", ""),
            ("engram / naive", f"{share:.1f}%", "<= 20%", verdict(share, 20)),
            ("analyzer calls per 100 exchanges", f"{100 * runs / REQUESTS:.0f}", "", ""),
            ("turns journaled (each once)", f"{stored_turns}", "", ""),
        ],
    )


if __name__ == "__main__":
    main()
