"""The default MiniLM: int8 products on 32-value activation blocks (quantized_model.py,
"block"). Derived deterministically from the pinned file and pinned itself, cached
beside (not over) the per-tensor int8 model, its vectors within cosine 0.998 of the
fp32 ones and exact under batching, its own vector space scored with the fp32 gate
model until one is fitted, and never a reason for recall to fail."""

from __future__ import annotations

import functools
import hashlib
import logging

import numpy as np
import pytest

from engram.config import RecallConfig
from engram.recall import gate_model, onnx_embedder, quantized_model
from engram.recall.embedder import make_embedder
from engram.recall.model_files import MINILM_ONNX, MINILM_Q8BLOCK, MINILM_QINT8
from engram.recall.onnx_embedder import OnnxEmbedder
from engram.recall.quantized_model import cached_path, derive, load_model
from tests.support.models import minilm

TEXTS = [
    "yes",
    "which package manager do we use?",
    "We use pnpm, never npm, in this repo",
    "How do I install dependencies here?",
    "the integration tests fail with connection refused on the database, what am i missing",
    "Run the API locally with `make dev`; it starts uvicorn with --reload on port 8000.",
]


@functools.cache
def source_bytes() -> bytes:
    return MINILM_ONNX.verified().read_bytes()


@functools.cache
def block() -> OnnxEmbedder:
    embedder = OnnxEmbedder(block_int8=True)
    embedder.load()
    return embedder


def test_the_block_rewrite_is_deterministic_and_gives_the_pinned_bytes() -> None:
    out = derive(source_bytes(), "block")
    assert derive(source_bytes(), "block") == out
    assert hashlib.sha256(out).hexdigest() == MINILM_Q8BLOCK.sha256
    assert len(out) == MINILM_Q8BLOCK.size
    with pytest.raises(ValueError):
        derive(source_bytes(), "fp16")


def test_it_is_the_default_and_onnx_int8_still_wins() -> None:
    default = make_embedder(RecallConfig())
    assert isinstance(default, OnnxEmbedder)
    assert default.derived is MINILM_Q8BLOCK and not default.int8
    assert default.name == f"onnx:all-MiniLM-L6-v2-q8b32:{MINILM_Q8BLOCK.sha256[:12]}"
    both = make_embedder(RecallConfig(onnx_int8=True))
    assert isinstance(both, OnnxEmbedder) and both.int8 and both.derived is MINILM_QINT8
    shipped = make_embedder(RecallConfig(onnx_block_int8=False))
    assert isinstance(shipped, OnnxEmbedder) and shipped.derived is None
    assert shipped.name == minilm().name  # the file as shipped, fp32 compute


def test_vectors_agree_with_fp32_and_batches_are_exact() -> None:
    e = block()
    assert e.derived is MINILM_Q8BLOCK and e.batch_exact and e.dim == 384
    queries = np.stack([e.embed_query(t) for t in TEXTS])
    reference = np.stack([minilm().embed_query(t) for t in TEXTS])
    agree = np.sum(queries * reference, axis=1)
    assert agree.min() > 0.997, agree  # measured 0.9982 min over 886 texts
    assert np.allclose(np.linalg.norm(queries, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(e.embed_queries(TEXTS), queries)  # bit for bit, batched
    passages = e.embed(TEXTS)
    assert np.sum(passages * minilm().embed(TEXTS), axis=1).min() > 0.997


def test_cached_beside_the_per_tensor_model() -> None:
    """(A tampered cache: test_recall_quantized.py, for both derived files.)"""
    int8, blocks = load_model(MINILM_QINT8), load_model(MINILM_Q8BLOCK)
    assert int8 == cached_path(MINILM_QINT8) and blocks == cached_path(MINILM_Q8BLOCK)
    names = sorted(p.name for p in blocks.parent.iterdir())
    assert names == sorted((int8.name, blocks.name))  # neither removes the other's file
    assert load_model(MINILM_QINT8) == int8 and load_model(MINILM_Q8BLOCK) == blocks


@pytest.mark.parametrize("failure", ["transform", "pin"])
def test_no_block_model_falls_back_to_fp32_with_one_log_line(
    failure: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(onnx_embedder, "_SESSIONS", {})

    def broken(model: bytes, matmul: str = "dynamic") -> bytes:
        if failure == "transform":
            raise quantized_model.TransformError("not the packaged MiniLM graph")
        return model  # not the pinned bytes: refused, never run

    monkeypatch.setattr(quantized_model, "derive", broken)
    e = OnnxEmbedder(block_int8=True)
    with caplog.at_level(logging.WARNING, "engram.recall"):
        v = e.embed_query("run the tests")
    assert e.derived is None and e.name == minilm().name and e.batch_exact
    assert np.array_equal(v, minilm().embed_query("run the tests"))
    # engram's own lines only: a worker's earlier test may leave asyncio's warnings behind
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("engram")]
    assert len(lines) == 1 and "using the fp32 MiniLM" in lines[0], lines
    assert not cached_path(MINILM_Q8BLOCK).exists()


def test_its_space_uses_the_fp32_gate_model_with_its_probe_until_one_is_fitted() -> None:
    name = block().name
    model = gate_model.model_for(name)
    assert model.space == gate_model.DEFAULT_SPACE and model.probe is not None
    vec = block().embed_query("which package manager do we use?")
    assert model.query_prior(vec, name) == pytest.approx(
        float(vec @ model.probe) + model.probe_intercept
    )
    assert model.query_prior(vec, name) != model.query_prior(vec, "onnx:some-other-model")


def test_an_onnxruntime_without_8_bit_block_kernels_runs_fp32(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import onnxruntime

    monkeypatch.setattr(onnx_embedder, "_SESSIONS", {})
    monkeypatch.setattr(onnxruntime, "__version__", "1.22.1")
    e = OnnxEmbedder(block_int8=True)
    with caplog.at_level(logging.WARNING, "engram.recall"):
        e.load()
    assert e.derived is None and e.name == minilm().name
    assert "onnxruntime 1.22.1 may lack 8-bit block kernels" in caplog.text
    assert not cached_path(MINILM_Q8BLOCK).exists()  # not even derived
