"""Query vectors computed ahead, several in one model call.

When requests arrive together (an agent's parallel sub-agents, several agents at once),
their recalls queue for the proxy's two recall workers, and each one's query embedding
used to run alone: 16 concurrent requests meant 16 model calls in a row. A model call
over a batch costs far less per query (MiniLM int8, 8 queries: 47-49 ms in one call
against 83-89 ms one by one), so the recall step embeds the queued queries together
(`ahead`) as soon as a worker is free, and each recall then takes its vector from here
(`take`) instead of calling the model. Vectors are bit-identical to one-by-one ones
(onnx_embedder.embed_queries), so batching never changes a decision; a model whose
batches are not exact (`batch_exact`: int8 activations) is not batched.

A vector not yet finished is waited for (the worker that computes it is already on it);
one never asked for is computed on the spot. Entries are used once and bounded.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np

LIMIT = 64  # entries kept (a burst's worth); the oldest go first


class QueryVectors:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ahead: OrderedDict[tuple[str, str], Future[np.ndarray]] = OrderedDict()

    def ahead(self, embedder: Any, texts: Sequence[str]) -> int:
        """Embed `texts` (those not already under way) in one call on this thread; how
        many were embedded. Without an exact batch method, nothing is done."""
        batch = getattr(embedder, "embed_queries", None)
        if batch is None or not getattr(embedder, "batch_exact", True):
            return 0  # one by one, in parallel, is then the faster way
        name = str(getattr(embedder, "name", ""))
        mine: list[tuple[str, Future[np.ndarray]]] = []
        with self._lock:
            for text in dict.fromkeys(t.strip() for t in texts):
                if (name, text) not in self._ahead:
                    future: Future[np.ndarray] = Future()
                    self._ahead[(name, text)] = future
                    mine.append((text, future))
            while len(self._ahead) > LIMIT:
                self._ahead.popitem(last=False)  # its taker computes it itself
        if not mine:
            return 0
        try:
            vectors = batch([text for text, _ in mine])
        except BaseException as exc:
            for _text, future in mine:
                future.set_exception(exc)
            raise
        for (_text, future), vector in zip(mine, vectors, strict=True):
            future.set_result(vector)
        return len(mine)

    def take(self, embedder: Any, text: str) -> np.ndarray:
        """`text`'s query vector: the one computed ahead (waiting for it if it is under
        way), else embedded now."""
        key = (str(getattr(embedder, "name", "")), text.strip())
        with self._lock:
            future = self._ahead.pop(key, None)
        if future is not None:
            try:
                return future.result()
            except Exception:  # the batch failed: embed it alone
                pass
        vector: np.ndarray = embedder.embed_query(text)
        return vector
