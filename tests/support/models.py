"""The local analyzer's test model: the 0.5B GGUF that `make test-setup` fetches into
.tools/models. A test that needs it calls `local_model()`: its path, or a skip with the
reason (a failure under CI=true, where every slow test must run). `minilm()` is the
recall embedder, loaded once per process."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

from engram.recall.onnx_embedder import OnnxEmbedder

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / ".tools" / "models"
SMALL = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"


def local_model(name: str = SMALL) -> Path:
    path = MODELS / name
    if path.is_file():
        return path
    reason = f"{name} is not in {MODELS} (run `make test-setup`)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@functools.cache
def minilm() -> OnnxEmbedder:
    """The packaged MiniLM, loaded once per test process (~0.3 s and ~60 MB a load)."""
    embedder = OnnxEmbedder()
    embedder.load()
    return embedder
