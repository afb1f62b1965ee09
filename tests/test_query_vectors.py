"""Queued recalls embed their queries in one model call (recall/query_vectors.py, the
proxy's recall step), and that changes no vector and no decision."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from engram.config import RecallConfig
from engram.recall.onnx_embedder import OnnxEmbedder
from engram.recall.query_vectors import QueryVectors
from engram.recall.service import Recaller
from engram.sources.recall_step import Decision, Job, make_recall
from engram.store import memories
from engram.store.db import Store
from engram.wire.model import Format, RawRequest
from tests.support.models import minilm

PROJECT = "/home/dev/work/shop-api"
QUESTIONS = [
    "which port does the staging database listen on?",
    "how do we install dependencies here?",
    "yes",
    "",  # an empty text embeds as a blank, like embed_query's
    "why does the nightly cron job retry three times before paging someone? " * 12,  # > 64
    "Wie starte ich die Tests lokal mit docker compose?",
]


class Counting:
    """The real embedder, counting model calls for queries."""

    def __init__(self) -> None:
        inner = minilm()
        self.inner, self.name, self.dim, self.coarse_dim = inner, inner.name, inner.dim, None
        self.single: list[str] = []
        self.batches: list[list[str]] = []

    def load(self) -> None:
        self.inner.load()

    def embed(self, texts: Any) -> np.ndarray:
        return self.inner.embed(texts)

    def embed_query(self, text: str) -> np.ndarray:
        self.single.append(text)
        return self.inner.embed_query(text)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        self.batches.append(list(texts))
        return self.inner.embed_queries(texts)


def test_a_batch_of_queries_equals_one_by_one_bit_for_bit() -> None:
    model = minilm()
    together = model.embed_queries(QUESTIONS)
    for text, row in zip(QUESTIONS, together, strict=True):
        assert np.array_equal(row, model.embed_query(text)), text[:40]
    assert model.embed_queries([]).shape == (0, model.dim)


def test_a_model_whose_batches_are_not_exact_is_not_batched() -> None:
    model = OnnxEmbedder(int8=True)
    model.load()
    if model.int8:  # int8 activations: a batch's scale changes every row
        assert not model.batch_exact
        assert QueryVectors().ahead(model, QUESTIONS[:3]) == 0
    assert np.array_equal(model.embed_queries(QUESTIONS[:2])[1], model.embed_query(QUESTIONS[1]))


def _request(question: str) -> RawRequest:
    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 32,
        "system": f"You are a coding agent.\nPrimary working directory: {PROJECT}\n",
        "messages": [{"role": "user", "content": question}],
    }
    return RawRequest(
        headers=[("content-type", "application/json")],
        body=json.dumps(body).encode(),
        host="api.anthropic.com",
        path="/v1/messages",
    )


def test_queued_recalls_share_one_model_call_and_decide_the_same(tmp_path: Path) -> None:
    store = Store(tmp_path / "e.db")
    store.ensure()
    with store.write() as session:
        for fact in (
            "The staging database of shop-api listens on port 6543, not 5432.",
            "We use pnpm, never npm, in this repo.",
            "Integration tests need `docker compose up -d db` first.",
            "The nightly cron job retries three times, then pages the on-call.",
        ):
            memories.add(session, fact, scope=PROJECT)
    counting = Counting()
    recaller = Recaller(store, RecallConfig(refresh_ms=0), embedder=counting, background=False)
    recaller.warm()
    step = make_recall(
        recaller, PROJECT, lambda fn: fn(), warm=False, budget_ms=60_000,
        first_request_budget_ms=60_000,
    )  # fmt: skip
    questions = [q for q in QUESTIONS if q]
    jobs = [step.prepare(r.body or b"", Format.ANTHROPIC, r) for r in map(_request, questions)]
    assert all(isinstance(j, Job) for j in jobs)
    counting.single.clear()
    decisions = [step.run(j) for j in jobs if isinstance(j, Job)]  # the first finds the rest
    # The first takes half of the queue with its own (the other half is the other
    # worker's); every query is embedded once, in a batch, none alone.
    assert len(counting.batches[0]) == 1 + (len(questions) - 1 + 1) // 2
    assert sorted(q for b in counting.batches for q in b) == sorted(q.strip() for q in questions)
    assert counting.single == []

    plain = Recaller(store, RecallConfig(refresh_ms=0), embedder=minilm(), background=False)
    for question, decision in zip(questions, decisions, strict=True):
        assert isinstance(decision, Decision)
        alone = plain.recall(question, PROJECT).audit()
        got = decision.record
        assert (got["outcome"], got.get("memories"), got.get("best")) == (
            alone["outcome"],
            alone.get("memories"),
            alone.get("best"),
        ), question[:40]
    store.close()
