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

# Without a Matryoshka prefix (MiniLM), a shard of at least SIGN_ROWS rows is first
# ranked by the sign bits of its vectors (`SignCodes`), and its best SIGN_CANDIDATES
# rows are re-scored exactly from float32. Below SIGN_ROWS every row is scored exactly,
# so small stores (and the labelled sets of bench/recall_eval.py) find exactly what they
# did. Measured with bench/vector_approx.py on real MiniLM vectors of varied texts (CPU
# time, one thread): at 20k rows the exact pass takes 2.5 ms, signs + re-scoring 1.0 ms,
# and the exact top 10 / top 20 are found 0.994 / 0.990 of the time with 1000
# candidates (0.986 / 0.974 with 500); at 10k the gain (1.3 -> 0.9 ms) is not worth any
# loss. At 100k one pass takes ~1.0 ms against ~12 ms.
SIGN_ROWS = 20_000
SIGN_CANDIDATES = 1000


class Shard:
    """One scope's rows: ids[i] is the memory of row i, for i < n.

    `coarse` holds each vector's first `coarse_dim` components, renormalized, as float32:
    the pass over every row reads only those (a quarter of the bytes for wordllama, whose
    l2_supercat vectors are Matryoshka-trained: a prefix is a coarser embedding). `fine`
    holds the full vectors as float16 for re-scoring the coarse pass's best rows exactly.
    Without a coarse prefix (coarse_dim == dim) there is no `fine`: `coarse` holds the
    full float32 vectors, scanned exactly while the shard is small; from SIGN_ROWS rows
    on, `signs` (built then, and kept in step with every change after) is the first pass.
    """

    __slots__ = ("coarse", "fine", "ids", "n", "pos", "signs")

    def __init__(self, dim: int, coarse_dim: int, capacity: int = 0) -> None:
        self.ids: list[str] = []
        self.n = 0
        self.pos: dict[str, int] = {}
        self.coarse = np.empty((capacity, coarse_dim), dtype=np.float32)
        self.fine = np.empty((capacity, dim), dtype=np.float16) if coarse_dim < dim else None
        self.signs: SignCodes | None = None

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
        if self.signs is not None:
            self.signs.set(self.n, vectors)
        for i, mid in enumerate(ids, start=self.n):
            self.pos[mid] = i
        self.ids.extend(ids)
        self.n = end
        self._index_signs()

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
        if self.signs is not None:
            self.signs.set(i, vec[None, :])
        self._index_signs()

    def _index_signs(self) -> None:
        """Build the sign codes once the shard is large enough to need them (once: after
        that every change updates them, and a shard that shrinks keeps them)."""
        if self.signs is None and self.fine is None and self.n >= SIGN_ROWS:
            self.signs = SignCodes(self.coarse[: self.n], self.coarse.shape[0])

    def _grow(self, rows: int) -> None:
        coarse = np.empty((rows, self.coarse.shape[1]), dtype=np.float32)
        coarse[: self.n] = self.coarse[: self.n]
        self.coarse = coarse
        if self.fine is not None:
            fine = np.empty((rows, self.fine.shape[1]), dtype=np.float16)
            fine[: self.n] = self.fine[: self.n]
            self.fine = fine
        if self.signs is not None:
            self.signs.grow(rows, self.n)

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
            if self.signs is not None:
                self.signs.move(last, i)
            self.ids[i] = moved
            self.pos[moved] = i
        self.ids.pop()
        self.n = last

    def top(
        self, query: np.ndarray, query_coarse: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(row indexes, exact cosines) of this shard's best k rows."""
        n = self.n
        if self.fine is not None:  # the Matryoshka prefix ranks, the full vectors decide
            scores = self.coarse[:n] @ query_coarse
            wide = min(n, max(COARSE_CANDIDATES, 4 * k))
            rows = np.argpartition(scores, -wide)[-wide:] if n > wide else np.arange(n)
            return _best(rows, self.fine[rows].astype(np.float32) @ query, k)
        if self.signs is not None and n >= SIGN_ROWS:  # the sign bits rank, float32 decides
            rows = self.signs.nearest(query, n, max(SIGN_CANDIDATES, 4 * k))
            return _best(rows, self.coarse[rows] @ query, k)
        scores = self.coarse[:n] @ query_coarse  # one exact pass: no index array
        if n <= k:
            return np.arange(n), scores
        rows = np.argpartition(scores, -k)[-k:]
        return rows, scores[rows]


def _best(rows: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    if rows.shape[0] <= k:
        return rows, scores
    keep = np.argpartition(scores, -k)[-k:]
    return rows[keep], scores[keep]


class SignCodes:
    """One bit per dimension of each row: its sign.

    The Hamming distance between two rows' sign bits tracks the angle between them.
    384 bits are 48 bytes a row, 4.8 MB at 100k memories, against 154 MB of float32 that
    an exact pass reads: the pass over them took ~0.6 ms there against ~12 ms. Stored
    word-major (`words[j, i]` is word j of row i), so the distance is six XOR + popcount
    passes over contiguous arrays. Centring the vectors first (MiniLM's share a mean of
    norm 0.28) did not help: on 27k real vectors the exact top 10 found with 500
    candidates was 0.984 centred, 0.988 not; so the codes need no state but themselves.
    """

    __slots__ = ("words",)

    def __init__(self, vectors: np.ndarray, capacity: int) -> None:
        self.words = np.empty((-(-vectors.shape[1] // 64), capacity), dtype=np.uint64)
        self.set(0, vectors)

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        """(rows, words) uint64: the sign bits, zero-padded to whole words."""
        bits = np.packbits(vectors > 0, axis=1)
        pad = 8 * self.words.shape[0] - bits.shape[1]
        if pad:
            bits = np.pad(bits, ((0, 0), (0, pad)))
        return np.ascontiguousarray(bits).view(np.uint64)

    def set(self, start: int, vectors: np.ndarray) -> None:
        for s in range(0, vectors.shape[0], 4096):  # bounded temporaries at 100k rows
            chunk = self.encode(vectors[s : s + 4096])
            self.words[:, start + s : start + s + chunk.shape[0]] = chunk.T

    def move(self, src: int, dst: int) -> None:
        self.words[:, dst] = self.words[:, src]

    def grow(self, rows: int, n: int) -> None:
        words = np.empty((self.words.shape[0], rows), dtype=np.uint64)
        words[:, :n] = self.words[:, :n]
        self.words = words

    def nearest(self, query: np.ndarray, n: int, wide: int) -> np.ndarray:
        """Indexes of (about) the `wide` rows among the first n nearest to `query`."""
        if n <= wide:
            return np.arange(n)
        code = self.encode(query[None, :])[0]
        dist = _popcount(self.words[0, :n] ^ code[0]).astype(np.uint16)
        for j in range(1, code.shape[0]):
            dist += _popcount(self.words[j, :n] ^ code[j])
        # Distances are small integers with many ties: a histogram finds the cut-off
        # distance (0.19 ms at 100k) where argpartition took 0.87 ms.
        cut = int(np.searchsorted(np.cumsum(np.bincount(dist)), wide))
        below = np.flatnonzero(dist < cut)
        return np.concatenate([below, np.flatnonzero(dist == cut)[: wide - below.shape[0]]])


def _popcount_swar(x: np.ndarray) -> np.ndarray:
    """Set bits per uint64 for numpy < 2.0 (no np.bitwise_count): the classic SWAR sum."""
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return ((x * np.uint64(0x0101010101010101)) >> np.uint64(56)).astype(np.uint8)


_popcount = getattr(np, "bitwise_count", _popcount_swar)


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
