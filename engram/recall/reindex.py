"""Re-embedding memories for the configured model: after a model change, an upgrade, or
on demand (`engram recall reindex`).

Vectors are computed in small batches and each batch is stored in its own short write
transaction, so the job can be stopped at any point (Ctrl-C, the proxy exiting) and
resumed later without redoing what was stored, and other writers are never held up
for long. MiniLM does ~100 memories a second on one core: a 10k store takes ~2 minutes,
during which recall uses BM25 alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np

from engram.recall.embedder import Embedder
from engram.store import vectors as vector_store
from engram.store.db import Store

BATCH = 64


def stale(store: Store, embedder: Embedder) -> list[str]:
    """Active memories without a current vector of this embedder, oldest first."""
    with store.read() as conn:
        return vector_store.stale_ids(conn, embedder.name)


def coverage(store: Store, embedder_name: str) -> tuple[int, int]:
    """(active memories, those with a current vector of this embedder)."""
    with store.read() as conn:
        return vector_store.coverage(conn, embedder_name)


def embed_memories(
    store: Store,
    embedder: Embedder,
    ids: Sequence[str],
    *,
    progress: Callable[[int, int], None] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Embed and store these memories' vectors (those still active); returns how many.

    `progress(done, total)` is called after every stored batch; `stop` ends the job
    between batches."""
    embedder.load()
    total = len(ids)
    done = 0
    if progress is not None:
        progress(0, total)
    for start in range(0, total, BATCH):
        if stop is not None and stop.is_set():
            break
        chunk = ids[start : start + BATCH]
        with store.read() as conn:
            rows = vector_store.active_rows(conn, chunk)
        if rows:
            matrix = embedder.embed([r.content for r in rows])
            values = [
                (r.id, r.content_hash, np.asarray(v, dtype="<f4").tobytes(), int(v.shape[0]))
                for r, v in zip(rows, matrix, strict=True)
            ]
            with store.write() as session:
                vector_store.save(session, embedder.name, values)
        done += len(chunk)
        if progress is not None:
            progress(done, total)
    return done
