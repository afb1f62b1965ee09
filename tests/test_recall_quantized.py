"""The packaged MiniLM with int8 activations: derived from the pinned file, cached in the
data dir, checked against its pin, re-derived when tampered with, shared safely between
processes, and never a reason for recall to fail (it falls back to the fp32 model)."""

from __future__ import annotations

import functools
import hashlib
import logging
import multiprocessing
import os

import numpy as np
import pytest

from engram.config import RecallConfig
from engram.recall import gate_model, onnx_embedder, quantized_model
from engram.recall.model_files import (
    MINILM_ONNX,
    MINILM_Q8BLOCK,
    MINILM_QINT8,
    MINILM_QINT8_SHA256,
    MINILM_QINT8_SIZE,
    DerivedFile,
)
from engram.recall.onnx_embedder import OnnxEmbedder
from engram.recall.quantized_model import TransformError, cached_path, derive, load_model
from engram.recall.reindex import coverage
from engram.recall.service import Recaller
from engram.store import memories
from engram.store.db import Store


@functools.cache
def source_bytes() -> bytes:
    return MINILM_ONNX.verified().read_bytes()


@pytest.fixture
def fresh_sessions(monkeypatch: pytest.MonkeyPatch) -> None:
    """No session from an earlier test: this test's load really reads the cache."""
    monkeypatch.setattr(onnx_embedder, "_SESSIONS", {})


def test_the_rewrite_is_deterministic_and_gives_the_pinned_bytes() -> None:
    out = derive(source_bytes())
    assert hashlib.sha256(out).hexdigest() == MINILM_QINT8_SHA256 and len(out) == MINILM_QINT8_SIZE
    with pytest.raises(TransformError):
        derive(b"\x08\x07")  # a model without a graph
    with pytest.raises(TransformError):
        derive(source_bytes()[:5000])  # truncated


def test_derived_once_cached_verified_and_close_to_the_fp32_vectors(fresh_sessions: None) -> None:
    target = cached_path()
    assert not target.exists()
    assert load_model() == target and target.is_file()
    assert oct(target.parent.stat().st_mode & 0o777) == "0o700"
    assert not [p for p in target.parent.iterdir() if p != target]  # no temp file left
    stamp = target.stat().st_mtime_ns
    assert load_model() == target and target.stat().st_mtime_ns == stamp  # reused as is

    q = OnnxEmbedder(int8=True)
    texts = ["We use pnpm, never npm, in this repo", "which package manager do we use?"]
    fp32 = OnnxEmbedder(int8=False)
    agree = np.sum(q.embed(texts) * fp32.embed(texts), axis=1)
    assert q.int8 and q.name.startswith("onnx:all-MiniLM-L6-v2-qint8:") and q.dim == 384
    assert fp32.name.startswith("onnx:all-MiniLM-L6-v2-int8:")
    assert agree.min() > 0.97, agree  # measured 0.98-0.996
    v = q.embed_query(texts[1])
    assert v.shape == (384,) and abs(float(np.linalg.norm(v)) - 1) < 1e-5


@pytest.mark.parametrize("derived", [MINILM_QINT8, MINILM_Q8BLOCK], ids=lambda d: d.matmul)
def test_a_tampered_cache_is_rejected_and_derived_again(
    derived: DerivedFile, caplog: pytest.LogCaptureFixture
) -> None:
    target = cached_path(derived)
    load_model(derived)
    with target.open("r+b") as f:
        f.seek(2_000_000)
        byte = f.read(1)
        f.seek(2_000_000)
        f.write(bytes([byte[0] ^ 0x55]))
    with caplog.at_level(logging.WARNING, "engram.recall"):
        assert load_model(derived) == target
    assert "fails its pin; deriving it again" in caplog.text
    assert hashlib.sha256(target.read_bytes()).hexdigest() == derived.sha256
    target.write_bytes(b"short")  # truncated: caught by the size before hashing
    assert load_model(derived) == target and target.stat().st_size == derived.size


def test_a_read_only_data_dir_uses_the_model_from_memory(
    caplog: pytest.LogCaptureFixture,
) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only directories")
    parent = cached_path().parent
    parent.mkdir(parents=True)
    parent.chmod(0o500)
    try:
        with caplog.at_level(logging.WARNING, "engram.recall"):
            model = load_model()
    finally:
        parent.chmod(0o700)
    assert isinstance(model, bytes) and len(model) == MINILM_QINT8_SIZE
    assert "cannot cache the int8 MiniLM" in caplog.text and not list(parent.iterdir())


def test_a_failed_cache_write_uses_the_model_from_memory(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A full disk (or a read-only data dir, which root does not see): the rename never
    happens, no temp file is left, the model runs from memory."""

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(quantized_model.os, "fsync", full)
    with caplog.at_level(logging.WARNING, "engram.recall"):
        model = load_model()
    assert isinstance(model, bytes) and len(model) == MINILM_QINT8_SIZE
    assert "No space left on device" in caplog.text
    assert not list(cached_path().parent.iterdir())


def test_no_int8_model_falls_back_to_fp32_with_one_log_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, fresh_sessions: None
) -> None:
    def broken(model: bytes, matmul: str = "dynamic") -> bytes:
        raise TransformError("not the packaged MiniLM graph")

    monkeypatch.setattr(quantized_model, "derive", broken)
    e = OnnxEmbedder(int8=True)
    with caplog.at_level(logging.WARNING, "engram.recall"):
        v = e.embed_query("run the tests")
    assert not e.int8 and e.name == OnnxEmbedder(int8=False).name
    assert v.shape == (384,)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "using the fp32 MiniLM" in lines[0], lines


def _derive_in_child(ready: multiprocessing.synchronize.Barrier) -> None:
    ready.wait(30)
    load_model()


@pytest.mark.slow
def test_processes_deriving_at_once_leave_one_intact_file() -> None:
    ctx = multiprocessing.get_context("spawn")  # fork after onnxruntime's threads may hang
    barrier = ctx.Barrier(2)
    children = [ctx.Process(target=_derive_in_child, args=(barrier,)) for _ in range(2)]
    for c in children:
        c.start()
    for c in children:
        c.join(120)
        assert c.exitcode == 0
    target = cached_path()
    assert [p.name for p in target.parent.iterdir()] == [target.name]
    assert hashlib.sha256(target.read_bytes()).hexdigest() == MINILM_QINT8_SHA256


def test_an_older_rewrites_file_is_removed_when_the_new_one_is_written() -> None:
    old = cached_path().with_name("all-MiniLM-L6-v2-qint8-0000000000000000.onnx")
    old.parent.mkdir(parents=True)
    old.write_bytes(b"old")
    load_model()
    assert not old.exists() and cached_path().is_file()


def test_switching_to_int8_reembeds_the_memories_in_their_own_space(store: Store) -> None:
    with store.write() as session:
        ids = [
            memories.add(session, text, kind="fact", scope="global").memory.id
            for text in ("We use pnpm, never npm, in this repo", "Postgres listens on 5433")
        ]
    fp32 = Recaller(store, RecallConfig(refresh_ms=0, onnx_block_int8=False), background=False)
    fp32.warm()
    assert coverage(store, fp32.embedder.name) == (2, 2)  # type: ignore[union-attr]
    q = Recaller(store, RecallConfig(refresh_ms=0, onnx_int8=True), background=False)
    name = q.embedder.name  # type: ignore[union-attr]
    assert name.startswith("onnx:all-MiniLM-L6-v2-qint8:") and coverage(store, name) == (2, 0)
    q.warm()  # two missing vectors: embedded at once (a large store: in the background)
    assert q.has_vectors and coverage(store, name) == (2, 2)
    result = q.recall("which package manager do we use?", None)
    assert (
        result.candidates[0].id == ids[0] and result.gate_model == gate_model.model_for(name).space
    )
