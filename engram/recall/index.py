"""Active memories' vectors in RAM, one block of rows per scope, kept in step with the store.

Why per scope: a request may only see its project's and the global memories, so a
search multiplies the query vector with exactly those blocks (plus the project's
ancestor directories, see `service.scopes_for`) and never touches other projects' rows.
Rows are kept in growable buffers; a removal moves the last row into the hole, so
every change is O(dim) and nothing is copied on the request path.

Why two passes (see `shard.Shard`): a matrix-vector product over 100k x 256 float32 reads
100 MB and took 8-25 ms here, over its 64-d prefix 0.5-1.5 ms; re-scoring the best 512
rows exactly costs microseconds. The full vectors are kept as float16 (re-scoring needs
no more precision), so 100k memories take ~75 MB instead of ~100 MB. MiniLM's vectors
have no such prefix: a scope of 20k memories or more is ranked first by the sign bits
of its vectors (48 bytes a row) and the best 1000 are re-scored from float32; smaller
scopes are scanned exactly.

Vectors are stored in `memory_vectors` (float32 little-endian, L2-normalized, with the
embedder's name and the content hash they were computed from). On `build` a vector is
reused when both still match, and computed (then stored) otherwise: switching embedders
or editing a memory recomputes exactly the affected rows.

Staying current: every memory change is written with an `events` row in the same
transaction (engram.store.memories), so `max(events.id)` is a change counter that costs
one b-tree seek. `pending_changes` compares it with the last id applied; `apply_changes`
reads the events after it (ignoring `inject`, which changes no memory) and re-reads only
the memories they name. The caller decides how often to look (recall.refresh_ms) and on
which thread to apply (the service does it off the request path).
"""

from __future__ import annotations

import logging
import sqlite3
import sys
import threading
from collections.abc import Iterable, Sequence

import numpy as np

from engram.recall.embedder import Embedder, EmbedderError
from engram.recall.shard import Shard, prefix, release_freed_memory, single_threaded_blas
from engram.store import vectors as vector_store
from engram.store.db import Store
from engram.store.vectors import ActiveRow as _Row

log = logging.getLogger("engram.recall")

EMBED_BATCH = 512
# A build that finds more memories than this without a current vector (a new model, an
# upgrade) does not embed them inline: MiniLM takes ~10 ms a memory, so 10k memories
# would keep recall cold for minutes. The index is built from what is stored, recall
# runs on BM25 alone, and the rest is embedded in the background (service.Recaller).
INLINE_EMBED_LIMIT = 200


class VectorIndex:
    """The searchable vectors of all active memories; thread-safe."""

    def __init__(self, store: Store, embedder: Embedder) -> None:
        single_threaded_blas()
        self.store = store
        self.embedder = embedder
        self._shards: dict[str, Shard] = {}
        self._scope_of: dict[str, str] = {}
        self._lock = threading.RLock()
        self.cursor = -1  # the last events.id applied; -1: never built
        self.dim = 0  # known once vectors are (the OpenAI embedder learns it from answers)
        self.generation = 0  # bumped by every applied change (for caches above)
        self.pending: list[str] = []  # memories left to embed before vectors are used

    # -- reading ----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._scope_of)

    @property
    def built(self) -> bool:
        return self.cursor >= 0

    @property
    def complete(self) -> bool:
        """Built, and every active memory has a vector of this embedder."""
        return self.built and not self.pending

    def share(self, scopes: Iterable[str]) -> float:
        """The share of indexed memories these scopes hold (1.0 when empty)."""
        with self._lock:
            total = len(self._scope_of)
            seen = sum(self._shards[s].n for s in dict.fromkeys(scopes) if s in self._shards)
        return seen / total if total else 1.0

    def scopes(self) -> set[str]:
        with self._lock:
            return {s for s, shard in self._shards.items() if shard.n}

    def search(self, query: np.ndarray, scopes: Iterable[str], k: int) -> list[tuple[str, float]]:
        """The k memories of these scopes most similar to `query` (a unit vector), best first."""
        query = np.asarray(query, dtype=np.float32)
        if self.dim and query.shape[0] != self.dim:
            raise EmbedderError(
                f"query vector has {query.shape[0]} dimensions, the stored "
                f"ones {self.dim}: was the embedding model changed?"
            )
        query_coarse = prefix(query[None, :], self.coarse_dim)[0]
        best_ids: list[str] = []
        best_scores: list[np.ndarray] = []
        with self._lock:
            for scope in dict.fromkeys(scopes):
                shard = self._shards.get(scope)
                if shard is None or shard.n == 0:
                    continue
                rows, scores = shard.top(query, query_coarse, k)
                best_ids.extend(shard.ids[i] for i in rows)
                best_scores.append(scores)
        if not best_ids:
            return []
        scores = np.concatenate(best_scores)
        order = np.argsort(-scores, kind="stable")[:k]
        return [(best_ids[i], float(scores[i])) for i in order]

    def vectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Float32 copies of the stored vectors of these memories (those indexed)."""
        rows_by_shard: dict[str, tuple[list[str], list[int]]] = {}
        out: dict[str, np.ndarray] = {}
        with self._lock:
            for mid in ids:
                scope = self._scope_of.get(mid)
                if scope is not None:
                    names, rows = rows_by_shard.setdefault(scope, ([], []))
                    names.append(mid)
                    rows.append(self._shards[scope].pos[mid])
            for scope, (names, rows) in rows_by_shard.items():
                out.update(zip(names, self._shards[scope].rows(rows), strict=True))
        return out

    # -- keeping current ---------------------------------------------------------------

    def change_counter(self, conn: sqlite3.Connection) -> int:
        return vector_store.change_counter(conn)

    def pending_changes(self, conn: sqlite3.Connection) -> bool:
        """Whether memories may have changed since the index last caught up (one seek)."""
        return self.change_counter(conn) != self.cursor

    def build(self, *, inline_limit: int | None = None) -> int:
        """(Re)load every active memory's vector. Returns the memories indexed.

        Missing vectors are computed (then stored) when there are at most
        `inline_limit` (INLINE_EMBED_LIMIT) of them; otherwise they are left in
        `pending` for a background re-embedding, and the index holds only what was stored.

        Streams rows in chunks into preallocated arrays: at 100k memories, holding every
        row and blob at once cost ~150 MB of peak memory the process never gave back.
        """
        shards: dict[str, Shard] = {}
        scope_of: dict[str, str] = {}
        missing: list[str] = []
        name = self.embedder.name
        with self.store.read() as conn:
            cursor = self.change_counter(conn)
            sizes = vector_store.active_scope_sizes(conn)
            dim = self.embedder.dim or vector_store.stored_dim(conn, name)
            found: dict[str, tuple[list[str], list[bytes]]] = {}
            for mid, scope, chash, vhash, blob in vector_store.active_with_vectors(conn, name):
                if dim and blob is not None and vhash == chash and len(blob) == 4 * dim:
                    ids, blobs = found.setdefault(scope, ([], []))
                    ids.append(mid)
                    blobs.append(blob)
                    if len(ids) >= 4096:
                        self._flush(shards, scope_of, scope, found.pop(scope), dim, sizes)
                else:
                    missing.append(mid)
            for scope, chunk in found.items():
                self._flush(shards, scope_of, scope, chunk, dim, sizes)
            pending: list[str] = []
            limit = INLINE_EMBED_LIMIT if inline_limit is None else inline_limit
            if len(missing) > limit:
                pending = missing
            else:
                for start in range(0, len(missing), EMBED_BATCH):
                    fresh = vector_store.active_rows(conn, missing[start : start + EMBED_BATCH])
                    vectors = self._complete(fresh, {})
                    for row in fresh:
                        self._extend(
                            shards,
                            scope_of,
                            row.scope,
                            [row.id],
                            vectors[row.id][None, :],
                            sizes.get(row.scope, 0),
                        )
        with self._lock:
            self.dim = dim or next((sh.dim for sh in shards.values()), 0)
            self._shards = shards
            self._scope_of = scope_of
            self.cursor = cursor
            self.pending = pending
            self.generation += 1
        release_freed_memory()
        return len(scope_of)

    def _flush(
        self,
        shards: dict[str, Shard],
        scope_of: dict[str, str],
        scope: str,
        chunk: tuple[list[str], list[bytes]],
        dim: int,
        sizes: dict[str, int],
    ) -> None:
        ids, blobs = chunk
        matrix = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(ids), dim)
        self._extend(shards, scope_of, scope, ids, matrix, sizes.get(scope, 0))

    def _extend(
        self,
        shards: dict[str, Shard],
        scope_of: dict[str, str],
        scope: str,
        ids: list[str],
        matrix: np.ndarray,
        capacity: int,
    ) -> None:
        shard = shards.get(scope)
        if shard is None:
            dim = int(matrix.shape[1])
            shard = shards[scope] = Shard(dim, self._coarse_dim(dim), capacity=capacity)
        key = sys.intern(scope)  # one string per scope, not one per memory
        shard.extend(ids, matrix)
        for mid in ids:
            scope_of[mid] = key

    def apply_changes(self) -> int:
        """Catch up with memory changes since the last build/apply. Returns memories touched."""
        if not self.built:
            return self.build()
        with self.store.read() as conn:
            cursor = self.change_counter(conn)
            if cursor == self.cursor:
                return 0
            if cursor < self.cursor:  # the events table went backwards: a restored backup
                return self.build()
            changed = vector_store.changed_memory_ids(conn, self.cursor, cursor)
            rows = vector_store.active_rows(conn, changed)
            stored = vector_store.stored_vectors(conn, self.embedder.name, [r.id for r in rows])
        vectors = self._complete(rows, stored)
        active = {r.id for r in rows}
        with self._lock:
            for mid in changed:
                if mid not in active:
                    self._remove(mid)
            for row in rows:
                if self._scope_of.get(row.id) not in (None, row.scope):
                    self._remove(row.id)  # moved to another scope (not done today, but cheap)
                shard = self._shards.get(row.scope)
                if shard is None:
                    self.dim = self.dim or int(vectors[row.id].shape[0])
                    shard = self._shards[row.scope] = Shard(self.dim, self._coarse_dim(self.dim))
                shard.put(row.id, vectors[row.id])
                self._scope_of[row.id] = row.scope
            self.cursor = cursor
            if changed:
                self.generation += 1
        return len(changed)

    @property
    def coarse_dim(self) -> int:
        return self._coarse_dim(self.dim)

    def _coarse_dim(self, dim: int) -> int:
        coarse = getattr(self.embedder, "coarse_dim", None)
        return coarse if coarse and coarse < dim else dim

    def _remove(self, mid: str) -> None:
        scope = self._scope_of.pop(mid, None)
        if scope is not None:
            self._shards[scope].remove(mid)

    # -- vectors in the store ------------------------------------------------------------

    def _complete(
        self, rows: list[_Row], stored: dict[str, tuple[str, bytes]]
    ) -> dict[str, np.ndarray]:
        """Vectors for all `rows`: stored ones where current, fresh ones (then saved) else."""
        vectors: dict[str, np.ndarray] = {}
        missing: list[_Row] = []
        for row in rows:
            hit = stored.get(row.id)
            if hit is not None and hit[0] == row.content_hash:
                vec = np.frombuffer(hit[1], dtype="<f4")
                if vec.shape[0] == self.embedder.dim or not self.embedder.dim:
                    vectors[row.id] = vec
                    continue
            missing.append(row)
        if not missing:
            return vectors
        fresh: list[tuple[_Row, np.ndarray]] = []
        for start in range(0, len(missing), EMBED_BATCH):
            batch = missing[start : start + EMBED_BATCH]
            matrix = self.embedder.embed([r.content for r in batch])
            fresh.extend(zip(batch, matrix, strict=True))
        for row, vec in fresh:
            vectors[row.id] = vec
        self._save(fresh)
        return vectors

    def _save(self, fresh: list[tuple[_Row, np.ndarray]]) -> None:
        """Store computed vectors; a failure (locked, read-only file) only costs a recompute."""
        from engram.store.db import DatabaseLocked

        rows = [
            (row.id, row.content_hash, np.asarray(vec, dtype="<f4").tobytes(), int(vec.shape[0]))
            for row, vec in fresh
        ]
        try:
            with self.store.write() as session:
                vector_store.save(session, self.embedder.name, rows)
        except (DatabaseLocked, sqlite3.Error, OSError) as exc:
            log.warning("could not store %d memory vectors: %s", len(fresh), exc)
        except Exception as exc:  # SQLAlchemy's errors wrap sqlite3's
            if type(exc).__module__.startswith("sqlalchemy"):
                log.warning("could not store %d memory vectors: %s", len(fresh), exc)
            else:
                raise
