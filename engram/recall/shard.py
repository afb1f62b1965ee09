"""One scope's vectors in RAM, and the process settings that keep scanning them fast.

Split from index.py, which decides what is indexed and keeps it current; this module
is how the rows are held and searched.
"""

from __future__ import annotations

import numpy as np

# Rows the coarse pass hands to the exact one, per scope. On the synthetic 100k set of
# bench/recall_speed.py (highly repetitive: many near-ties) 512 keeps 84% of the exact
# top 20, and the rest are near-ties: the 20th score is off by 0.004 on average.
COARSE_CANDIDATES = 512


class Shard:
    """One scope's rows: ids[i] is the memory of row i, for i < n.

    `coarse` holds each vector's first `coarse_dim` components, renormalized, as float32:
    the pass over every row reads only those (a quarter of the bytes for wordllama, whose
    l2_supercat vectors are Matryoshka-trained: a prefix is a coarser embedding). `fine`
    holds the full vectors as float16 for re-scoring the coarse pass's best rows exactly.
    Without a coarse prefix (coarse_dim == dim) there is no `fine`: one exact pass.
    """

    __slots__ = ("coarse", "fine", "ids", "n", "pos")

    def __init__(self, dim: int, coarse_dim: int, capacity: int = 0) -> None:
        self.ids: list[str] = []
        self.n = 0
        self.pos: dict[str, int] = {}
        self.coarse = np.empty((capacity, coarse_dim), dtype=np.float32)
        self.fine = np.empty((capacity, dim), dtype=np.float16) if coarse_dim < dim else None

    @property
    def dim(self) -> int:
        return int((self.fine if self.fine is not None else self.coarse).shape[1])

    def extend(self, ids: list[str], vectors: np.ndarray) -> None:
        """Append rows for memories not in this shard yet."""
        end = self.n + len(ids)
        if end > self.coarse.shape[0]:
            self._grow(max(end, self.n * 2, 16))
        self.coarse[self.n : end] = prefix(vectors, self.coarse.shape[1])
        if self.fine is not None:
            self.fine[self.n : end] = vectors
        for i, mid in enumerate(ids, start=self.n):
            self.pos[mid] = i
        self.ids.extend(ids)
        self.n = end

    def rows(self, rows: list[int]) -> np.ndarray:
        """Full vectors of these rows as float32 (one gather, one conversion)."""
        source = self.fine if self.fine is not None else self.coarse
        return source[rows].astype(np.float32)

    def put(self, mid: str, vec: np.ndarray) -> None:
        i = self.pos.get(mid)
        if i is None:
            if self.n == self.coarse.shape[0]:
                self._grow(max(16, self.n * 2))
            i = self.n
            self.ids.append(mid)
            self.pos[mid] = i
            self.n += 1
        self.coarse[i] = prefix(vec[None, :], self.coarse.shape[1])[0]
        if self.fine is not None:
            self.fine[i] = vec

    def _grow(self, rows: int) -> None:
        coarse = np.empty((rows, self.coarse.shape[1]), dtype=np.float32)
        coarse[: self.n] = self.coarse[: self.n]
        self.coarse = coarse
        if self.fine is not None:
            fine = np.empty((rows, self.fine.shape[1]), dtype=np.float16)
            fine[: self.n] = self.fine[: self.n]
            self.fine = fine

    def remove(self, mid: str) -> None:
        i = self.pos.pop(mid, None)
        if i is None:
            return
        last = self.n - 1
        if i != last:
            moved = self.ids[last]
            self.coarse[i] = self.coarse[last]
            if self.fine is not None:
                self.fine[i] = self.fine[last]
            self.ids[i] = moved
            self.pos[moved] = i
        self.ids.pop()
        self.n = last

    def top(
        self, query: np.ndarray, query_coarse: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(row indexes, exact cosines) of this shard's best k rows."""
        scores = self.coarse[: self.n] @ query_coarse
        if self.fine is None:  # one exact pass (MiniLM): no index array over every row
            if self.n <= k:
                return np.arange(self.n), scores
            rows = np.argpartition(scores, -k)[-k:]
            return rows, scores[rows]
        wide = min(self.n, max(COARSE_CANDIDATES, 4 * k))
        rows = np.argpartition(scores, -wide)[-wide:] if self.n > wide else np.arange(self.n)
        scores = self.fine[rows].astype(np.float32) @ query
        if rows.shape[0] > k:
            keep = np.argpartition(scores, -k)[-k:]
            rows, scores = rows[keep], scores[keep]
        return rows, scores


_BLAS_SETTERS = (
    "scipy_openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "openblas_set_num_threads",
)


def single_threaded_blas() -> bool:
    """Make OpenBLAS use one thread in this process; True if it was found and set.

    Recall's products are small (<= 100k x 64); OpenBLAS splits them over every core
    anyway, and on a busy machine the threads wait for each other: recall at 100k
    memories took 6-52 ms with 2 threads and a steady 6-8 ms with one (2 CPUs, other
    work running). The environment variable only works before numpy is imported, so
    the library's own setter is called, as threadpoolctl does. No OpenBLAS (macOS's
    Accelerate, MKL): nothing to do.
    """
    try:
        import ctypes

        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
        for path in paths:
            lib = ctypes.CDLL(path)
            for name in _BLAS_SETTERS:
                setter = getattr(lib, name, None)
                if setter is not None:
                    setter(1)
                    return True
    except (OSError, IndexError):
        pass
    return False


def release_freed_memory() -> None:
    """Hand freed heap back to the OS (glibc keeps it otherwise): a build's temporaries
    would stay in the proxy's RSS for good."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to do


def prefix(vectors: np.ndarray, dims: int) -> np.ndarray:
    """The first `dims` components of each row, scaled back to unit length, float32."""
    part = np.array(vectors[:, :dims], dtype=np.float32, copy=True, order="C")
    norms = np.linalg.norm(part, axis=1, keepdims=True)
    np.maximum(norms, 1e-12, out=norms)
    part /= norms
    return part
