"""The gate's fitted model: candidate features -> probability that the memory helps.

A logistic regression, fitted by bench/recall_eval.py (`--fit`) on the *tuning* half of
bench/data/recall_gate only, and stored next to this module as gate_model.json with
what it was fitted on (data, date, sizes, the threshold and its scores on both halves).
One model per vector space, because cosines of different embedders live on different
scales: the packaged MiniLM, wordllama, and `bm25` for recall without vectors (no
embedder, or while memories are being re-embedded). An embedder with no model of its
own (an OpenAI-compatible endpoint, another ONNX model) uses the packaged MiniLM's
model, whose cosine scale is typical of sentence-transformer models; docs/recall.md
says how to check it.

Why logistic regression: a dozen features, a few thousand labelled candidates, and a
need for a score that means the same thing for every query and store (a probability)
so one threshold holds. A tree model was not needed to reach the targets, and the
coefficients are readable: docs/recall.md lists them.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engram.recall.features import FEATURES

MODEL_FILE = Path(__file__).with_name("gate_model.json")
BM25_ONLY = "bm25"
DEFAULT_SPACE = "onnx:all-MiniLM-L6-v2-int8"
# Spaces whose vectors agree with another's so closely that its model, query probe
# included, applies as it is until one is fitted for them (`bench/recall_eval.py --fit`
# writes it, and a space's own model always wins): the block-int8 MiniLM's vectors are
# within cosine 0.998 of the fp32 ones on every labelled query and memory
# (bench/embed_agreement.py, docs/recall.md).
SAME_SCALE = {"onnx:all-MiniLM-L6-v2-q8b32": DEFAULT_SPACE}


@dataclass(frozen=True, slots=True)
class GateModel:
    space: str  # the vector space it was fitted for (an embedder name prefix) or "bm25"
    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    threshold: float  # inject a memory when its probability is at least this
    # The query probe (features.py `qprior`): a logit from the query's unit vector,
    # standardization folded in. None: this space has no probe (bm25), the feature is 0.
    probe: np.ndarray | None = None
    probe_intercept: float = 0.0

    def query_prior(self, query_vec: np.ndarray | None, embedder_name: str | None) -> float:
        """The probe's logit that a request like this one needs a note at all; for a
        vector from another space (an embedder using this model as a stand-in) or none,
        the value the model saw on average, so the feature weighs nothing either way."""
        if (
            self.probe is None
            or query_vec is None
            or embedder_name is None
            or not _in_space(embedder_name, self.space)
            or query_vec.shape != self.probe.shape
        ):
            return (
                float(self.mean[self.features.index("qprior")])
                if "qprior" in self.features
                else 0.0
            )
        return float(query_vec @ self.probe) + self.probe_intercept

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for rows of FEATURES (columns this model does not use ignored)."""
        if x.shape[0] == 0:
            return np.zeros(0)
        cols = [FEATURES.index(f) for f in self.features]
        z = (x[:, cols] - self.mean) / self.scale
        logit = np.clip(z @ self.coef + self.intercept, -30, 30)
        return 1.0 / (1.0 + np.exp(-logit))

    @classmethod
    def from_dict(cls, space: str, d: dict[str, Any]) -> GateModel:
        probe = d.get("query_probe")
        return cls(
            space,
            tuple(d["features"]),
            np.asarray(d["mean"], dtype=np.float64),
            np.asarray(d["scale"], dtype=np.float64),
            np.asarray(d["coef"], dtype=np.float64),
            float(d["intercept"]),
            float(d["threshold"]),
            np.asarray(probe["coef"], dtype=np.float64) if probe else None,
            float(probe["intercept"]) if probe else 0.0,
        )


_models: dict[str, GateModel] | None = None
_lock = threading.Lock()


def _load() -> dict[str, GateModel]:
    global _models
    with _lock:
        if _models is None:
            data = json.loads(MODEL_FILE.read_text(encoding="utf-8"))
            _models = {space: GateModel.from_dict(space, d) for space, d in data["models"].items()}
        return _models


def model_for(embedder_name: str | None, *, has_vectors: bool = True) -> GateModel:
    """The model for this embedder's vector space; `bm25` without vectors."""
    models = _load()
    if embedder_name is None or not has_vectors:
        return models[BM25_ONLY]
    for space, model in models.items():
        if space != BM25_ONLY and embedder_name.startswith(space):
            return model
    for space, stand_in in SAME_SCALE.items():
        if embedder_name.startswith(space):
            return models[stand_in]
    return models[DEFAULT_SPACE]


def _in_space(embedder_name: str, space: str) -> bool:
    """Whether vectors of this embedder are in `space` or one on the same scale."""
    return embedder_name.startswith(space) or any(
        embedder_name.startswith(other) for other, to in SAME_SCALE.items() if to == space
    )


def logit(p: float) -> float:
    p = min(max(p, 1e-9), 1 - 1e-9)
    return math.log(p / (1 - p))
