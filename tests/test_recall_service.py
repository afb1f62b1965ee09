"""Recaller end to end on real SQLite files with the real MiniLM model: scope, status,
the vector index staying current, re-embedding after a model change, caching, logging,
errors and concurrency."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engram.config import RecallConfig
from engram.errors import EngramError
from engram.recall.embedder import EmbedderError
from engram.recall.service import Recaller, normalize_project, scopes_for
from engram.store import memories
from engram.store.db import Store
from tests.support.models import minilm

API = "/home/dev/work/shop-api"
WEB = "/home/dev/work/storefront"


class Counting:
    """The real embedder, counting the memories it is asked to embed."""

    def __init__(self) -> None:
        inner = minilm()
        self.inner, self.name, self.dim, self.coarse_dim = inner, inner.name, inner.dim, None
        self.texts: list[str] = []

    def load(self) -> None:
        self.inner.load()

    def embed(self, texts: Any) -> np.ndarray:
        self.texts.extend(texts)
        return self.inner.embed(texts)

    def embed_query(self, text: str) -> np.ndarray:
        return self.inner.embed_query(text)


def add(store: Store, content: str, scope: str = "global", kind: str = "fact") -> str:
    with store.write() as session:
        return memories.add(session, content, kind=kind, scope=scope).memory.id


def make(store: Store, embedder: Any = None, **settings: Any) -> Recaller:
    cfg = RecallConfig(**{"refresh_ms": 0, **settings})
    return Recaller(store, cfg, embedder=embedder or Counting(), background=False)


@pytest.fixture
def filled(store: Store) -> dict[str, str]:
    return {
        "api_tests": add(
            store,
            "The shop-api integration tests need `docker compose up -d db` "
            "first, else they fail with connection refused.",
            API,
            "gotcha",
        ),
        "api_port": add(store, "The local Postgres for shop-api listens on port 5433.", API),
        "web_tests": add(store, "storefront unit tests run with `pnpm test` (Vitest).", WEB),
        "global_pref": add(
            store,
            "The user prefers pytest -x to stop at the first failing test.",
            "global",
            "preference",
        ),
        "unrelated": add(store, "Deploy announcements go to the #deploys Slack channel."),
    }


def test_recall_injects_relevant_memories_of_project_and_global(
    store: Store, filled: dict[str, str]
) -> None:
    recaller = make(store)
    result = recaller.recall("the integration tests fail with connection refused", API)
    assert result.injected, result.reason
    ids = [c.id for c in result.candidates]
    assert result.memory_ids[0] == filled["api_tests"]
    assert filled["web_tests"] not in ids  # another project's memory is never a candidate
    assert result.scopes[:2] == (API, "/home/dev/work") and result.scopes[-1] == "global"
    assert result.block_text is not None and filled["api_tests"] in result.block_text
    assert "may be outdated" in result.block_text
    assert all(c.score >= result.min_score for c in result.candidates if c.injected)
    assert (
        result.outcome == "injected" and result.audit()["memories"][0]["id"] == filled["api_tests"]
    )
    # Global only: the project's memories are out of reach.
    result = recaller.recall("the integration tests fail with connection refused", None)
    assert filled["api_tests"] not in [c.id for c in result.candidates]


def test_nothing_injected_below_the_gate(store: Store, filled: dict[str, str]) -> None:
    result = make(store).recall("write a haiku about autumn leaves", API)
    assert not result.injected and result.block_text is None
    assert result.outcome == "below gate" and result.reason.startswith("below gate")
    assert all(c.note == "below min_score" for c in result.candidates)
    assert result.audit()["outcome"] == "below gate" and "best" in result.audit()
    assert make(store).recall("   ", API).outcome == "no user turn"


def test_superseded_and_forgotten_never_returned_even_by_a_stale_index(
    store: Store, filled: dict[str, str]
) -> None:
    recaller = make(store, refresh_ms=10**9)  # the index will not notice the changes
    recaller.warm()
    with store.write() as session:
        memories.forget(session, filled["api_tests"])
        _old, new = memories.supersede(
            session, filled["api_port"], "The local Postgres for shop-api listens on port 5434."
        )
    assert len(recaller.index or []) == 5  # still indexed
    for query in ("integration tests fail connection refused", "which port is postgres on"):
        ids = [c.id for c in recaller.recall(query, API).candidates]
        assert filled["api_tests"] not in ids and filled["api_port"] not in ids
    ids = [c.id for c in recaller.recall("which port is postgres on", API).candidates]
    assert new.id in ids  # BM25 reads the live table


def test_vectors_are_stored_reused_and_recomputed_on_change(
    store: Store, filled: dict[str, str]
) -> None:
    first = Counting()
    make(store, first).warm()
    assert len(first.texts) == 5
    with store.read() as conn:
        rows = conn.execute(
            "SELECT v.model, v.dim, length(v.vector), v.content_hash = "
            "m.content_hash FROM memory_vectors v JOIN memories m ON "
            "m.id = v.memory_id"
        ).fetchall()
    assert [tuple(r) for r in rows] == [(first.name, 384, 384 * 4, 1)] * 5
    assert first.name.startswith("onnx:all-MiniLM-L6-v2-int8:")
    second = Counting()
    recaller = make(store, second)
    recaller.warm()
    assert second.texts == []  # all reused
    with store.write() as session:
        memories.edit(session, filled["unrelated"], "Deploys are announced in #releases.")
    assert recaller.refresh() == 1 and second.texts == ["Deploys are announced in #releases."]
    other = Counting()
    other.name = "another-model"
    make(store, other).warm()
    assert len(other.texts) == 5  # vectors of another model are never reused


def test_index_follows_adds_forgets_and_restores(store: Store, filled: dict[str, str]) -> None:
    recaller = make(store)
    recaller.warm()
    index = recaller.index
    assert index is not None and len(index) == 5
    generation = index.generation
    fresh = add(store, "Run Storybook with `pnpm storybook` on port 6006.", WEB)
    result = recaller.recall("start storybook", WEB)
    assert len(index) == 6 and index.generation > generation
    hit = next(c for c in result.candidates if c.id == fresh)
    assert hit.cosine > 0.3 and result.injected
    with store.write() as session:
        memories.forget(session, fresh)
    recaller.recall("start storybook", WEB)
    assert len(index) == 5
    with store.write() as session:
        memories.restore(session, fresh)
    recaller.recall("start storybook", WEB)
    assert len(index) == 6
    # Our own inject events change no memory: no index work, same generation.
    recaller.log_injection(recaller.recall("start storybook", WEB), "conv-1")
    generation = index.generation
    recaller.recall("start storybook again", WEB)
    assert index.generation == generation and index.cursor == index.change_counter(
        sqlite3.connect(store.path)
    )


def test_background_refresh_catches_up_without_blocking(
    store: Store, filled: dict[str, str]
) -> None:
    recaller = Recaller(store, RecallConfig(refresh_ms=0), embedder=Counting(), background=True)
    recaller.warm()
    fresh = add(store, "Feature flags come from LaunchDarkly via useFlag().", WEB)
    deadline = time.monotonic() + 10
    while len(recaller.index or []) < 6:
        recaller.recall("hide the reviews behind a feature flag", WEB)
        assert time.monotonic() < deadline, "the background refresh never caught up"
        time.sleep(0.02)
    result = recaller.recall("hide the reviews behind a launchdarkly feature flag", WEB)
    assert result.memory_ids[:1] == [fresh]


def test_unchanged_query_reuses_the_result_and_is_logged_once(
    store: Store, filled: dict[str, str]
) -> None:
    recaller = make(store)
    query = "the integration tests fail with connection refused"
    first = recaller.recall(query, API, conversation="conv-1")
    again = recaller.recall(query, API, conversation="conv-1")
    assert first.injected and not first.cached and again.cached
    assert again.block_text == first.block_text
    assert not recaller.recall(query, API, conversation="conv-2").cached
    assert recaller.log_injection(first, "conv-1") == len(first.memory_ids)
    assert recaller.log_injection(again, "conv-1") == 0
    with store.read() as conn:
        row = conn.execute(
            "SELECT use_count, last_used_at FROM memories WHERE id = ?", (filled["api_tests"],)
        ).fetchone()
        events = conn.execute(
            "SELECT memory_id, actor, detail FROM events WHERE action = 'inject'"
        ).fetchall()
    assert row["use_count"] == 1 and row["last_used_at"]
    assert {e["memory_id"] for e in events} == set(first.memory_ids)
    assert all('"conversation": "conv-1"' in e["detail"] and e["actor"] == "recall" for e in events)
    # A memory change invalidates the cached result.
    add(store, "Integration tests also need Redis: docker compose up -d redis.", API)
    assert not recaller.recall(query, API, conversation="conv-1").cached


def test_warm_up_embeds_a_query_and_requests_meanwhile_say_warming_up(
    store: Store, filled: dict[str, str]
) -> None:
    recaller = Recaller(store, RecallConfig(refresh_ms=0), embedder=Counting())
    first = recaller.recall("the integration tests fail with connection refused", API, wait=False)
    assert not first.injected and first.outcome == "warming up"
    assert recaller.wait_ready(60) and recaller.ready
    result = recaller.recall("the integration tests fail with connection refused", API, wait=False)
    assert result.injected and result.timings_ms["embed"] < 1000


def _changed_model(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> tuple[Recaller, Counting, threading.Event]:
    """A recaller whose model differs from the stored vectors' (5 memories, too many to
    embed inline), and whose embedding of memories waits for the returned event."""
    from engram.recall import index

    make(store).warm()  # vectors of the current model for all 5 memories
    monkeypatch.setattr(index, "INLINE_EMBED_LIMIT", 2)  # 5 missing: too many to embed inline
    other = Counting()
    other.name = "onnx:another-model"
    release = threading.Event()
    real_embed = other.embed

    def held_embed(texts: Any) -> np.ndarray:
        release.wait(30)
        return real_embed(texts)

    other.embed = held_embed  # type: ignore[method-assign]
    recaller = Recaller(store, RecallConfig(refresh_ms=0), embedder=other, background=True)
    return recaller, other, release


def test_a_model_change_reembeds_in_the_background_and_recall_uses_bm25_meanwhile(
    store: Store, filled: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    recaller, other, gate_release = _changed_model(store, monkeypatch)
    recaller.warm()
    assert recaller.ready and not recaller.has_vectors  # ready at once, on BM25
    during = recaller.recall("docker compose integration tests connection refused", API)
    assert during.gate_model == "bm25" and during.candidates[0].id == filled["api_tests"]
    gate_release.set()
    deadline = time.monotonic() + 60
    while not recaller.has_vectors:
        assert time.monotonic() < deadline, "re-embedding never finished"
        time.sleep(0.02)
    assert recaller.reindex_progress == (5, 5) and len(other.texts) == 5
    after = recaller.recall("docker compose integration tests connection refused", API)
    assert after.gate_model.startswith("onnx:") and after.injected


class Broken:
    name, dim, coarse_dim = "broken", 256, None

    def load(self) -> None:
        pass

    def embed(self, texts: Any) -> np.ndarray:
        raise EmbedderError("the model fell over")

    def embed_query(self, text: str) -> np.ndarray:
        raise EmbedderError("the model fell over")


def test_errors_surface_as_exceptions(store: Store, filled: dict[str, str]) -> None:
    with pytest.raises(EmbedderError, match="fell over"):
        make(store, Broken()).recall("run the tests", API)
    background = Recaller(store, RecallConfig(), embedder=Broken())
    background.warm(background=True)
    assert background._warm_thread is not None
    background._warm_thread.join(10)
    with pytest.raises(EmbedderError):
        background.recall("run the tests", API)
    assert not background.wait_ready(10) and "fell over" in str(background.warm_error)  # retried
    with pytest.raises(EngramError, match=r"unknown recall\.embedder"):
        Recaller(store, RecallConfig(embedder="magic"))


def test_bm25_only_without_an_embedder(store: Store, filled: dict[str, str]) -> None:
    recaller = Recaller(store, RecallConfig(embedder="none"), background=False)
    assert recaller.index is None
    result = recaller.recall("docker compose integration tests connection refused", API)
    assert recaller.ready and result.gate_model == "bm25"
    assert result.injected and result.memory_ids == [filled["api_tests"]]
    assert result.candidates[0].cosine == 0.0


def test_concurrent_recalls_while_memories_change(store: Store, filled: dict[str, str]) -> None:
    recaller = Recaller(store, RecallConfig(refresh_ms=0), embedder=Counting())
    recaller.warm()
    errors: list[BaseException] = []
    forgotten: list[str] = []  # appended once the forget is committed
    stop = threading.Event()

    def worker() -> None:
        try:
            while not stop.is_set():
                gone = set(forgotten[:])  # forgotten before this recall started
                result = recaller.recall("test fixture fails: connection refused port", API)
                assert not gone & {c.id for c in result.candidates}
        except BaseException as exc:
            errors.append(exc)
        finally:
            recaller.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for i in range(15):
            mid = add(store, f"Test fixture number {i} needs port {6000 + i}.", API)
            if i % 3 == 0:
                with store.write() as session:
                    memories.forget(session, mid)
                forgotten.append(mid)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not errors, errors[:3]
    recaller.refresh()
    result = recaller.recall("test fixture port", API)
    assert not set(forgotten) & {c.id for c in result.candidates}
    assert len(recaller.index or []) == 5 + 15 - len(forgotten)


def test_scopes_and_project_normalization(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/dev")
    assert scopes_for(None) == ("global",)
    assert scopes_for("/home/dev/work/app/pkg") == (
        "/home/dev/work/app/pkg",
        "/home/dev/work/app",
        "/home/dev/work",
        "global",
    )
    assert scopes_for("/srv/app") == ("/srv/app", "/srv", "global")
    assert normalize_project("/home/dev/app/") == "/home/dev/app"
    assert normalize_project("/home/dev/app/../app") == "/home/dev/app"
    assert normalize_project(Path("/x")) == "/x"
    assert normalize_project("") is None and normalize_project("global") is None


def test_a_recall_whose_request_gave_up_is_not_run(store: Store, filled: dict[str, str]) -> None:
    """A job still queued when its budget ran out (a burst of concurrent requests) is
    answered `budget exceeded` without a search; one within its budget is searched."""
    from engram.sources.recall_step import Job, RecallStep

    embedder = Counting()
    queries: list[str] = []
    original = embedder.embed_query

    def counting_query(text: str) -> np.ndarray:
        queries.append(text)
        return original(text)

    embedder.embed_query = counting_query  # type: ignore[method-assign]
    recaller = make(store, embedder)
    recaller.warm()
    queries.clear()
    step = RecallStep(recaller, API, lambda fn: fn())
    stale = Job("which port does the local postgres use?", API, "c1", 50.0)
    stale.started -= 0.2  # queued for 200 ms: its caller stopped waiting at 50
    decision = step.run(stale)
    assert decision.block is None
    assert decision.record["outcome"] == "budget exceeded"
    assert queries == []
    fresh = Job("which port does the local postgres use?", API, "c2", 60_000.0)
    decision = step.run(fresh)
    assert decision.block is not None and "5433" in decision.block
    assert queries == ["which port does the local postgres use?"]


def test_stop_background_waits_for_warm_up_and_stops_re_embedding_between_batches(
    store: Store, filled: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process exiting with a daemon thread inside onnxruntime aborts (exit -6): the
    edges call stop_background() first, which must end every background thread."""
    from engram.recall import reindex

    monkeypatch.setattr(reindex, "BATCH", 1)
    recaller, other, release = _changed_model(store, monkeypatch)
    recaller.warm()  # ready on BM25; re-embedding 5 memories in the background
    assert recaller._reindex_thread is not None and recaller._reindex_thread.is_alive()
    assert not recaller.stop_background(timeout=0.2)  # still inside a batch: bounded
    release.set()
    assert recaller.stop_background(timeout=30)
    assert not recaller._reindex_thread.is_alive()
    assert recaller.reindex_progress[0] < 5 and len(other.texts) < 5  # stopped between batches
    recaller.warm(background=True)  # nothing new starts once stopping
    assert recaller._warm_thread is None or not recaller._warm_thread.is_alive()


def test_stop_background_joins_a_warm_up_in_progress(store: Store, filled: dict[str, str]) -> None:
    recaller = Recaller(store, RecallConfig(refresh_ms=0), embedder=Counting())
    recaller.warm(background=True)
    assert recaller.stop_background(timeout=60)
    assert recaller._warm_thread is not None and not recaller._warm_thread.is_alive()
