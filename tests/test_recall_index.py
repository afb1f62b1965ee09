"""The vector index's sign-code first pass: used only in large shards, kept in step with
memory changes, and exact below its size threshold."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import pytest

from engram.recall import index, shard
from engram.store import memories
from engram.store.db import Store

DIM = 64


class PlainEmbedder:
    """Deterministic unit vectors with a shared component (like MiniLM's), and no
    Matryoshka prefix: the index scans full vectors, as with the default model."""

    name, dim, coarse_dim = "plain", DIM, None

    def load(self) -> None:
        pass

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([vector(t) for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return vector(text)


def vector(text: str) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(text.encode()))
    v = rng.standard_normal(DIM) + 0.3  # a shared component, as real models' vectors have
    return (v / np.linalg.norm(v)).astype(np.float32)


def add(store: Store, content: str) -> str:
    with store.write() as session:
        return memories.add(session, content).memory.id


def exact(store: Store, query: np.ndarray, k: int) -> list[tuple[str, float]]:
    with store.read() as conn:
        rows = conn.execute("SELECT id, content FROM memories WHERE status = 'active'").fetchall()
    scored = sorted(((float(vector(c) @ query), mid) for mid, c in rows), reverse=True)
    return [(mid, s) for s, mid in scored[:k]]


def consistent(idx: index.VectorIndex) -> bool:
    """Every row's sign code is the code of its current vector."""
    rows = idx._shards["global"]
    assert rows.signs is not None
    codes = rows.signs.encode(rows.coarse[: rows.n])
    return bool(np.array_equal(rows.signs.words[:, : rows.n], codes.T))


@pytest.fixture
def nearest_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = shard.SignCodes.nearest

    def counted(self: shard.SignCodes, query: np.ndarray, n: int, wide: int) -> np.ndarray:
        calls.append(n)
        return real(self, query, n, wide)

    monkeypatch.setattr(shard.SignCodes, "nearest", counted)
    return calls


def test_small_store_is_scanned_exactly(store: Store, nearest_calls: list[int]) -> None:
    for i in range(300):
        add(store, f"memory number {i}")
    idx = index.VectorIndex(store, PlainEmbedder())
    assert idx.build(inline_limit=1000) == 300
    assert idx._shards["global"].signs is None  # 300 < SIGN_ROWS: no codes at all
    for seed in range(5):
        query = vector(f"query {seed}")
        got = idx.search(query, ["global"], 20)
        want = exact(store, query, 20)
        assert [m for m, _ in got] == [m for m, _ in want]
        assert np.allclose([s for _, s in got], [s for _, s in want], atol=1e-6)
    assert nearest_calls == []


def test_sign_pass_above_the_threshold_rescored_exactly(
    store: Store, monkeypatch: pytest.MonkeyPatch, nearest_calls: list[int]
) -> None:
    monkeypatch.setattr(shard, "SIGN_ROWS", 200)
    for i in range(300):
        add(store, f"memory number {i}")
    idx = index.VectorIndex(store, PlainEmbedder())
    idx.build(inline_limit=1000)
    assert consistent(idx)
    for seed in range(5):  # a query near memory `seed`, as a paraphrase is
        query = vector(f"memory number {seed}") + 0.3 * vector(f"query {seed}")
        query /= np.linalg.norm(query)
        want = exact(store, query, 10)
        monkeypatch.setattr(shard, "SIGN_CANDIDATES", 300)  # every row re-scored: exact
        got = idx.search(query, ["global"], 10)
        assert [m for m, _ in got] == [m for m, _ in want]
        assert np.allclose([s for _, s in got], [s for _, s in want], atol=1e-6)
        monkeypatch.setattr(shard, "SIGN_CANDIDATES", 60)  # a fifth of the rows
        approx = idx.search(query, ["global"], 10)
        assert approx[0][0] == want[0][0]  # random vectors: below the top one, near-ties
        scores = dict(want)
        for mid, score in approx:  # what it returns is scored exactly
            assert score == pytest.approx(float(vector(content_of(store, mid)) @ query), abs=1e-6)
            assert mid not in scores or score == pytest.approx(scores[mid], abs=1e-6)
    assert nearest_calls and all(n == 300 for n in nearest_calls)
    monkeypatch.setattr(shard, "SIGN_ROWS", 301)  # the same shard, now under the threshold
    nearest_calls.clear()
    idx.search(vector("query"), ["global"], 10)
    assert nearest_calls == []


def content_of(store: Store, mid: str) -> str:
    with store.read() as conn:
        return str(conn.execute("SELECT content FROM memories WHERE id = ?", (mid,)).fetchone()[0])


def test_sign_codes_follow_add_forget_and_supersede(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shard, "SIGN_ROWS", 50)
    monkeypatch.setattr(shard, "SIGN_CANDIDATES", 8)
    ids = [add(store, f"memory number {i}") for i in range(40)]
    idx = index.VectorIndex(store, PlainEmbedder())
    idx.build(inline_limit=1000)
    assert idx._shards["global"].signs is None  # 40 rows: exact, no codes yet
    ids += [add(store, f"memory number {i}") for i in range(40, 120)]  # crosses 50, grows
    assert idx.apply_changes() == 80
    assert idx._shards["global"].n == 120 and consistent(idx)
    with store.write() as session:
        for mid in ids[:30:3]:
            memories.forget(session, mid)
        new, _ = memories.supersede(session, ids[50], "a brand new fact about caching")
    idx.apply_changes()
    assert idx._shards["global"].n == 120 - 10 - 1 + 1 and consistent(idx)
    gone = set(ids[:30:3]) | {ids[50]}
    for mid in [*ids, new.id]:
        if mid in gone:
            continue
        query = vector(content_of(store, mid))
        got = idx.search(query, ["global"], 3)
        assert got[0][0] == mid and got[0][1] == pytest.approx(1.0, abs=1e-5)
        assert not gone & {m for m, _ in got}
    for mid in gone:  # a forgotten memory's own vector no longer finds it
        query = vector(content_of(store, mid))
        assert mid not in {m for m, _ in idx.search(query, ["global"], 10)}


def test_popcount_fallback_matches_numpy() -> None:
    x = np.random.default_rng(0).integers(0, 2**63, size=500, dtype=np.uint64)
    x[:2] = [0, np.iinfo(np.uint64).max]
    want = [bin(int(v)).count("1") for v in x]
    assert shard._popcount_swar(x).tolist() == want
