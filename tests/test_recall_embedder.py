"""Embedders: the shipped wordllama model (offline) and an OpenAI-compatible endpoint."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from engram.config import RecallConfig
from engram.recall.embedder import (
    EmbedderError,
    OpenAIEmbedder,
    WordLlamaEmbedder,
    make_embedder,
)
from tests.support.offline import run_offline


@pytest.fixture(scope="session")
def wordllama() -> WordLlamaEmbedder:
    embedder = WordLlamaEmbedder(256)
    embedder.load()
    return embedder


def test_wordllama_vectors_are_unit_float32_and_meaningful(wordllama: WordLlamaEmbedder) -> None:
    texts = [
        "the api tests need the database running",
        "integration tests fail unless postgres is up",
        "write a haiku about autumn leaves",
        "",
    ]
    vecs = wordllama.embed(texts)
    assert vecs.shape == (4, 256) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs[:3], axis=1), 1.0, atol=1e-5)
    assert np.all(np.isfinite(vecs))  # the empty text gives a zero row, not NaN
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2] + 0.1
    assert np.array_equal(wordllama.embed(texts[:1]), vecs[:1])  # deterministic
    assert wordllama.embed([]).shape == (0, 256)
    assert wordllama.name == "wordllama:l2_supercat:256" and wordllama.coarse_dim == 64


def test_wordllama_truncated_dims_and_bad_dim() -> None:
    small = WordLlamaEmbedder(128)
    vec = small.embed(["use pnpm, not npm"])
    assert vec.shape == (1, 128) and abs(float(np.linalg.norm(vec)) - 1) < 1e-5
    assert small.name.endswith(":128")
    with pytest.raises(EmbedderError, match="one of"):
        WordLlamaEmbedder(100)


NO_NETWORK = r"""
import logging, os, socket, sys
events = []
OUTWARD = ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname",
           "socket.gethostbyaddr", "socket.sendto", "socket.sendmsg")
def hook(event, args):
    # (urllib3, imported by wordllama, binds ::1 once at import to probe for IPv6: local)
    if event in OUTWARD:
        events.append(event)
        raise RuntimeError("network use: " + event)
sys.addaudithook(hook)
root = logging.getLogger()
before = (list(root.handlers), root.level)
from engram.recall.embedder import WordLlamaEmbedder
e = WordLlamaEmbedder(256)
vec = e.embed(["run the tests with pytest"])
assert vec.shape == (1, 256), vec.shape
assert (list(root.handlers), root.level) == before, "wordllama changed the root logger"
print("ok", events)
"""


def test_wordllama_loads_without_any_network(tmp_path: Any) -> None:
    """The model comes from the wheel: nothing connects or resolves a name (an audit hook
    fails any attempt), with an empty HOME so no download cache can help either."""
    done = run_offline(NO_NETWORK, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok []"
    assert not (tmp_path / ".cache" / "wordllama").exists()


# -- OpenAI-compatible endpoint ---------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server: Any

    def do_POST(self) -> None:
        # The client may time out first (the "slow" case): expected.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._answer()

    def _answer(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.path, dict(self.headers), body))
        mode = self.server.mode
        if mode == "slow":
            time.sleep(2)
        if mode == "error":
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"boom")
            return
        dim = 3 if mode == "wrong-dim" and len(self.server.requests) > 1 else 4
        data = [
            {"index": i, "embedding": [float(len(t)), 1.0, 0.0, 2.0][:dim]}
            for i, t in reversed(list(enumerate(body["input"])))
        ]  # out of order on purpose
        payload = json.dumps({"data": data, "model": body["model"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[Any]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.requests = []  # type: ignore[attr-defined]
    server.mode = "ok"  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_openai_embedder_posts_batches_marked_internal(
    endpoint: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy in the environment must be ignored (it could be engram's own proxy).
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    url = f"http://127.0.0.1:{endpoint.server_port}/v1"
    emb = OpenAIEmbedder(url, "nomic-embed-text", api_key="sk-local")
    texts = [f"text number {i}" for i in range(300)]
    vecs = emb.embed(texts)
    assert vecs.shape == (300, 4) and emb.dim == 4 and emb.name == "openai:nomic-embed-text"
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-6)
    expected = np.array([len(texts[7]), 1.0, 0.0, 2.0], dtype=np.float32)
    assert np.allclose(vecs[7], expected / np.linalg.norm(expected))  # order restored
    assert [len(r[2]["input"]) for r in endpoint.requests] == [256, 44]
    path, headers, body = endpoint.requests[0]
    assert path == "/v1/embeddings" and body["model"] == "nomic-embed-text"
    assert headers["X-Engram-Internal"] == "1"
    assert headers["Authorization"] == "Bearer sk-local"


def test_openai_embedder_errors_are_prompt_and_typed(endpoint: Any) -> None:
    base = f"http://127.0.0.1:{endpoint.server_port}/v1/embeddings"  # full URL works too
    endpoint.mode = "error"
    with pytest.raises(EmbedderError, match="answered 500"):
        OpenAIEmbedder(base, "m").embed(["x"])
    endpoint.mode = "slow"
    start = time.monotonic()
    with pytest.raises(EmbedderError, match="failed"):
        OpenAIEmbedder(base, "m", timeout=0.3).embed(["x"])
    assert time.monotonic() - start < 1.5
    endpoint.mode = "wrong-dim"
    endpoint.requests.clear()
    emb = OpenAIEmbedder(base, "m")
    emb.embed(["a"])
    with pytest.raises(EmbedderError, match="3-d vectors, expected 4"):
        emb.embed(["b"])
    with pytest.raises(EmbedderError, match="failed"):
        OpenAIEmbedder("http://127.0.0.1:9/v1", "m", timeout=1).embed(["x"])


def test_make_embedder_follows_config() -> None:
    from engram.recall.onnx_embedder import OnnxEmbedder

    assert isinstance(make_embedder(RecallConfig()), OnnxEmbedder)
    assert isinstance(make_embedder(RecallConfig(embedder="wordllama")), WordLlamaEmbedder)
    assert make_embedder(RecallConfig(embedder="none")) is None
    emb = make_embedder(
        RecallConfig(
            embedder="openai",
            openai_base_url="http://127.0.0.1:1/v1",
            openai_model="m",
            openai_dim=8,
        )
    )
    assert isinstance(emb, OpenAIEmbedder) and emb.dim == 8
    with pytest.raises(EmbedderError, match="openai_base_url"):
        make_embedder(RecallConfig(embedder="openai"))
    with pytest.raises(EmbedderError, match=r"unknown recall\.embedder"):
        make_embedder(RecallConfig(embedder="bert"))
