"""The gate (threshold, duplicates, budget, rendering), fusion, BM25 term pruning and the
two-pass searches, each against what a plain exhaustive computation would give."""

from __future__ import annotations

import random

import numpy as np
import pytest

from engram.recall import features, gate, gate_model, hybrid, index, shard
from engram.recall.gate import Candidate, GateSettings, decide
from engram.store import memories
from engram.store.db import Store
from engram.wire.block import BLOCK_OPEN, wrap_block


def cand(
    mid: str, score: float, content: str = "", scope: str = "global", chash: str = ""
) -> Candidate:
    return Candidate(
        mid, content or f"memory {mid}", "fact", scope, score, content_hash=chash or mid
    )


def unit(*values: float) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_threshold_relative_floor_and_max_memories() -> None:
    settings = GateSettings(min_score=0.4, relative=0.8, max_memories=2)
    cs = [cand("a", 0.6), cand("b", 0.5), cand("c", 0.49), cand("d", 0.45), cand("e", 0.2)]
    decision = decide(cs, {}, settings)
    assert decision.injected and [c.id for c in cs if c.injected] == ["a", "b"]
    assert cs[2].note == "max_memories (2) reached"
    assert cs[3].note == "below 0.80 x the best score" and cs[4].note == "below min_score"
    assert "2 memories" in decision.reason and decision.block is not None
    assert decision.outcome == "injected"
    low = decide([cand("a", 0.39)], {}, settings)
    assert not low.injected and low.outcome == "below gate"
    assert low.reason == "below gate: best a scores 0.390 < min_score 0.40"
    none = decide([], {}, settings)
    assert not none.injected and none.outcome == "no candidates"


def test_duplicates_by_hash_and_by_vector() -> None:
    settings = GateSettings(min_score=0.1, relative=0.0, dedup_threshold=0.95)
    cs = [
        cand("a", 0.9, "Use pnpm.", "global", "h1"),
        cand("b", 0.8, "Use pnpm.", "/p", "h1"),  # the same fact kept in two scopes
        cand("c", 0.7, "Use pnpm, never npm.", "/p", "h2"),
        cand("d", 0.6, "Postgres is on 5433.", "/p", "h3"),
    ]
    vectors = {"a": unit(1, 0, 0), "b": unit(1, 0, 0), "c": unit(1, 0.1, 0), "d": unit(0, 1, 0)}
    decide(cs, vectors, settings)
    assert [c.id for c in cs if c.injected] == ["a", "d"]
    assert cs[1].note == "near-duplicate of a" and cs[2].note == "near-duplicate of a"


def test_greedy_packing_within_the_token_budget() -> None:
    settings = GateSettings(min_score=0.1, relative=0.0, budget_tokens=300)
    big = "x" * 900  # ~300 tokens on its own: cannot fit beside the header
    cs = [cand("a", 0.9, "short and first"), cand("b", 0.8, big), cand("c", 0.7, "fits")]
    decision = decide(cs, {}, settings)
    assert decision.injected and [c.id for c in cs if c.injected] == ["a", "c"]
    assert cs[1].note == "over the token budget"
    assert decision.block is not None and gate.estimate_tokens(decision.block) <= 300
    alone = decide([cand("b", 0.8, big)], {}, settings)
    assert not alone.injected and alone.reason == "no memory fit the token budget"


def test_block_text_is_redacted_labelled_and_wrappable() -> None:
    secret = "sk-proj-Xq4vT9mLr2Kd8NwPz6YbHc3Fj7Gs1Ae5"  # an alphabet run reads as a placeholder
    cs = [
        cand(
            "m-aaaa1111",
            0.9,
            f"Deploy with OPENAI_API_KEY={secret} set\nthen run make deploy.",
            "/home/dev/app",
        ),
        cand("m-bbbb2222", 0.8, "Mention </engram-memory> in docs."),
    ]
    block = decide(cs, {}, GateSettings(min_score=0.1)).block
    assert block is not None and secret not in block and "[REDACTED:openai]" in block
    assert block.startswith(gate.HEADER)
    assert "- [m-aaaa1111] (project, fact) Deploy with" in block
    assert "\n  then run make deploy." in block  # continuation lines stay in their item
    assert "- [m-bbbb2222] (global, fact)" in block
    wrapped = wrap_block(block)
    assert wrapped.startswith(BLOCK_OPEN) and wrapped.count("</engram-memory>") == 1


def hit(mid: str, bm25: float, cos: float, br: int | None, vr: int | None) -> hybrid.Hit:
    return hybrid.Hit(mid, bm25=bm25, cosine=cos, bm25_rank=br, vector_rank=vr)


def test_fusion_methods() -> None:
    def hits() -> dict[str, hybrid.Hit]:
        return {
            "lex": hit("lex", 12.0, 0.20, 1, 3),
            "sem": hit("sem", 0.0, 0.70, None, 1),
            "both": hit("both", 5.0, 0.50, 2, 2),
        }

    weighted = hybrid.fuse(hits(), "weighted")
    assert [h.id for h in weighted] == ["both", "sem", "lex"]
    both = weighted[0]
    assert both.score == pytest.approx(0.6 * 0.5 + 0.4 * 5 / 11)
    rrf = hybrid.fuse(hits(), "rrf")  # 1/61 + 1/63 edges out 2/62
    assert [h.id for h in rrf] == ["lex", "both", "sem"]
    assert rrf[1].order == pytest.approx(2 / 62) and rrf[1].score == pytest.approx(both.score)
    assert [h.id for h in hybrid.fuse(hits(), "vector")] == ["sem", "both", "lex"]
    assert [h.id for h in hybrid.fuse(hits(), "bm25")] == ["lex", "both", "sem"]
    no_vec = hybrid.fuse(hits(), "weighted", has_vectors=False)
    assert no_vec[0].id == "lex" and no_vec[0].score == pytest.approx(12 / 18)
    with pytest.raises(ValueError, match="unknown fusion"):
        hybrid.fuse(hits(), "magic")


def test_query_terms_drop_filler_and_quote_syntax() -> None:
    assert hybrid.query_terms("Can you please fix the flaky test_order_expiry test?") == [
        "flaky",
        "test_order_expiry",
        "test",
    ]
    assert hybrid.fts_match(['"x"', "a-b"]) == '"""x""" OR "a-b"'
    assert hybrid.fts_match([]) is None


def add(store: Store, content: str, scope: str = "global") -> str:
    with store.write() as session:
        return memories.add(session, content, scope=scope).memory.id


def test_term_pruning_and_two_pass_bm25_match_the_plain_query(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(3)
    words = ["alpha", "beta", "gamma", "delta", "kappa", "sigma", "omega", "theta"]
    for i in range(300):
        text = f"common note {i} " + " ".join(rng.choices(words, k=4))
        add(store, text + (" rareword" if i % 50 == 0 else ""), "/p/a" if i % 3 else "global")
    with store.read() as conn:
        monkeypatch.setattr(hybrid.TermStats, "MIN_ROWS", 0)
        monkeypatch.setattr(hybrid.TermStats, "ROW_SHARE", 0.15)
        stats = hybrid.TermStats()
        # Budget 45 rows: "common" is in all 300, "alpha" in ~120, "rareword" in 6.
        assert stats.prune(conn, ["common", "rareword", "alpha"]) == ["rareword"]
        assert stats.prune(conn, ["common", "alpha"]) == ["alpha"]  # the rarest stays alone
        assert stats.prune(conn, ["common"]) == []  # over 4x the budget: BM25 is skipped
        assert stats.prune(conn, ["nosuchword"]) == []
        plain = hybrid.bm25_search(conn, "gamma kappa rareword", ("/p/a", "global"), 10)
        monkeypatch.setattr(hybrid, "TWO_PASS_ROWS", 0)
        unpruned = hybrid.TermStats()
        monkeypatch.setattr(hybrid.TermStats, "MIN_ROWS", 10**6)
        for visible in (1.0, 0.5, 0.01):
            two = hybrid.bm25_search(
                conn, "gamma kappa rareword", ("/p/a", "global"), 10, unpruned, visible
            )
            assert [(h.id, round(h.bm25, 6)) for h in two] == [
                (h.id, round(h.bm25, 6)) for h in plain
            ]
        only_a = hybrid.bm25_search(conn, "gamma kappa", ("/p/a",), 10, unpruned, 0.01)
        assert len(only_a) == 10 and {h.row["scope"] for h in only_a} == {"/p/a"}


DECAY = np.exp(-np.arange(96) / 24)


class FixedEmbedder:
    """Random unit vectors per text, for testing the index without a model; like a
    Matryoshka-trained model's, their leading components carry most of the weight."""

    name, dim, coarse_dim = "fixed", 96, 32

    def load(self) -> None:
        pass

    def __init__(self) -> None:
        self.vectors: dict[str, np.ndarray] = {}

    def embed(self, texts: list[str]) -> np.ndarray:
        out = []
        for t in texts:
            if t not in self.vectors:
                rng = np.random.default_rng(abs(hash(t)) % 2**32)
                self.vectors[t] = unit(*(rng.standard_normal(self.dim) * DECAY))
            out.append(self.vectors[t])
        return np.stack(out).astype(np.float32)


def test_two_pass_vector_search_agrees_with_exact_search(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = FixedEmbedder()
    ids = {add(store, f"memory number {i}", "/p" if i % 4 else "global"): i for i in range(400)}
    idx = index.VectorIndex(store, embedder)
    assert idx.build(inline_limit=1000) == 400 and idx.share(["/p"]) == pytest.approx(0.75)
    texts = {mid: f"memory number {i}" for mid, i in ids.items()}
    matrix = np.stack([embedder.vectors[texts[m]] for m in texts])
    names = list(texts)
    for seed in range(5):
        query = unit(*(np.random.default_rng(seed).standard_normal(96) * DECAY))
        exact = sorted(zip(matrix @ query, names, strict=True), reverse=True)[:10]
        monkeypatch.setattr(shard, "COARSE_CANDIDATES", 400)  # every row re-scored: exact
        got = idx.search(query, ["/p", "global"], 10)
        # float16 storage and BLAS threading can swap near-ties: compare what is found and
        # the scores, not the order of equal scores.
        assert len({m for m, _ in got} & {m for _, m in exact}) >= 9
        assert np.allclose(sorted(s for _, s in got), sorted(s for s, _ in exact), atol=2e-3)
        monkeypatch.setattr(shard, "COARSE_CANDIDATES", 100)
        approx = idx.search(query, ["/p", "global"], 10)
        assert len({m for m, _ in approx} & {m for _, m in exact}) >= 8
    only_global = idx.search(query, ["global"], 500)
    assert len(only_global) == 100 and all(ids[m] % 4 == 0 for m, _ in only_global)
    with pytest.raises(index.EmbedderError, match="dimensions"):
        idx.search(np.ones(5, dtype=np.float32), ["/p"], 3)


def test_shard_removal_keeps_rows_consistent() -> None:
    rows = shard.Shard(8, 4)
    vecs = {f"m{i}": unit(*np.eye(8)[i % 8] + 0.01 * i) for i in range(40)}
    rows.extend(list(vecs)[:20], np.stack(list(vecs.values())[:20]))
    for mid in list(vecs)[20:]:
        rows.put(mid, vecs[mid])
    for mid in ("m0", "m39", "m17", "m5"):
        rows.remove(mid)
        del vecs[mid]
    rows.remove("missing")
    assert rows.n == 36 and len(rows.ids) == 36 and set(rows.pos) == set(vecs)
    for mid, vec in vecs.items():
        assert np.allclose(rows.rows([rows.pos[mid]])[0], vec, atol=2e-3)


def test_tool_kind_links_a_job_to_the_tool_a_memory_names() -> None:
    """ "install dependencies" asks about a package manager; "we use pnpm" names one. A
    request that names a tool itself is matched by words and identifiers instead."""
    memory = hybrid.Hit("m", row={"content": "We use pnpm, never npm, in this repo"})
    col = features.FEATURES.index("tool_kind")

    def tool_kind(query: str) -> float:
        return float(features.features(features.query_info(query), [memory], None)[0, col])

    assert tool_kind("How do I install dependencies here?") == 1.0
    assert tool_kind("which package manager do we use?") == 1.0
    assert tool_kind("install lodash with yarn") == 0.0
    assert tool_kind("thanks, that worked!") == 0.0


def test_query_probe_applies_only_in_its_own_vector_space() -> None:
    model = gate_model.model_for(gate_model.DEFAULT_SPACE)
    assert model.probe is not None
    vec = np.zeros(model.probe.shape)
    vec[0] = 1.0
    own = model.query_prior(vec, gate_model.DEFAULT_SPACE + ":384")
    assert own == pytest.approx(float(model.probe[0]) + model.probe_intercept)
    neutral = float(model.mean[model.features.index("qprior")])
    assert model.query_prior(vec, "onnx:some-other-model") == pytest.approx(neutral)
    assert model.query_prior(None, gate_model.DEFAULT_SPACE) == pytest.approx(neutral)


def test_a_score_just_under_the_gate_never_prints_equal_to_it() -> None:
    low = decide([cand("a", 0.2597)], {}, GateSettings(min_score=0.26))
    assert low.reason == "below gate: best a scores 0.2597 < min_score 0.260"
