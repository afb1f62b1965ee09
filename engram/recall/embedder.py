"""Text -> unit vectors: the embedder interface and its backends.

Backends (`recall.embedder`):
- `onnx` (default): a sentence-embedding model in ONNX, by default all-MiniLM-L6-v2
  from its wheel (onnx_embedder.py), or any model directory;
- `wordllama`: static token vectors from the wordllama wheel (below), the fallback on
  platforms without onnxruntime: 100x faster, clearly worse at paraphrases;
- `openai`: any OpenAI-compatible `/v1/embeddings` endpoint (Ollama, vLLM, ...);
- `none`: BM25 only.

Recall compares a query vector with every memory's vector by a dot product, so every
embedder returns float32 rows of unit length: the dot product *is* the cosine.

`WordLlamaEmbedder` uses the weights that ship inside the wordllama wheel (a 32k x 256
token-embedding table, 16 MB on disk): an embedding is the mean of the token rows, so
it costs ~0.05 ms per query and needs no network, GPU or model download. Two wordllama
0.4 quirks are handled here rather than patched upstream:
- `WordLlama.load` looks for the tokenizer in `<package>/tokenizer/` but the wheel ships
  it in `<package>/tokenizers/`; passing the package directory as `cache_dir` makes the
  cache lookup land on the shipped file, and `disable_download=True` turns any miss
  into an error instead of an HTTP request.
- importing wordllama calls `logging.basicConfig(level=INFO)`, which would hijack the
  host's logging (the proxy's); the root logger is put back as it was after import.

`OpenAIEmbedder` posts to `<base_url>/embeddings` (Ollama, vLLM, LM Studio, OpenAI). It
ignores proxy variables (`trust_env=False`) and marks its requests `X-Engram-Internal: 1`
so engram never captures its own traffic.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from engram.errors import EngramError
from engram.wire.markers import INTERNAL_HEADERS

log = logging.getLogger("engram.recall")

WORDLLAMA_CONFIG = "l2_supercat"
WORDLLAMA_DIMS = (64, 128, 256)  # the shipped file is 256-d; smaller ones are truncations


class EmbedderError(EngramError):
    """The embedder could not load or answer; recall callers treat it as 'no recall'."""


class Embedder(Protocol):
    """What recall needs from a text embedding model."""

    name: str  # identifies the vector space: vectors of another name are never mixed
    dim: int  # 0 until known (an endpoint's model answers with its size)

    def load(self) -> None:
        """Load the model now (idempotent): the warm-up calls it off the request path."""
        ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Memories: float32 array of shape (len(texts), dim), each row L2-normalized."""
        ...

    def embed_query(self, text: str) -> np.ndarray:
        """A recall query: one unit row of `dim` float32 (models may treat queries and
        passages differently, e.g. e5's prefixes, or cut queries shorter)."""
        ...


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; an all-zero row (no known token) stays zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    np.maximum(norms, 1e-12, out=norms)
    return np.ascontiguousarray(vectors / norms, dtype=np.float32)


def _import_wordllama() -> Any:
    """Import wordllama without letting it reconfigure the root logger."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        import wordllama
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
    return wordllama


class WordLlamaEmbedder:
    """wordllama's l2_supercat token embeddings, loaded from the installed wheel only."""

    def __init__(self, dim: int = 256) -> None:
        if dim not in WORDLLAMA_DIMS:
            raise EmbedderError(f"recall.wordllama_dim must be one of {WORDLLAMA_DIMS}, got {dim}")
        self.dim = dim
        self.name = f"wordllama:{WORDLLAMA_CONFIG}:{dim}"
        # l2_supercat is Matryoshka-trained: a vector's first 64 components are a coarser
        # embedding, which the index scans first (see index._Shard).
        self.coarse_dim: int | None = 64 if dim > 64 else None
        self._model: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load the weights (~0.4 s, ~120 MB RSS with the import); idempotent, thread-safe."""
        if self._model is not None:
            return
        with self._lock:
            if self._model is not None:
                return
            from engram.recall.model_files import WORDLLAMA_TOKENIZER, WORDLLAMA_WEIGHTS

            WORDLLAMA_WEIGHTS.verified()
            WORDLLAMA_TOKENIZER.verified()
            try:
                wordllama = _import_wordllama()
                package_dir = Path(wordllama.__file__).parent
                self._model = wordllama.WordLlama.load(
                    config=WORDLLAMA_CONFIG,
                    dim=256,
                    trunc_dim=None if self.dim == 256 else self.dim,
                    cache_dir=package_dir,
                    disable_download=True,
                )
            except ImportError as exc:
                raise EmbedderError(
                    f"wordllama is not installed ({exc})",
                    hint="pip install wordllama, or set recall.embedder",
                ) from None
            except (OSError, ValueError) as exc:
                raise EmbedderError(f"cannot load the wordllama model: {exc}") from None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.load()
        raw = self._model.embed(list(texts), norm=False, batch_size=256)
        return normalize(raw)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]


class OpenAIEmbedder:
    """Any OpenAI-compatible `/v1/embeddings` endpoint."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 5.0,
        dim: int | None = None,
    ) -> None:
        url = base_url.rstrip("/")
        self.url = url if url.endswith("/embeddings") else url + "/embeddings"
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.name = f"openai:{model}"
        self.dim = dim or 0  # learned from the first answer when not configured
        self.coarse_dim: int | None = None  # not every model is Matryoshka-trained
        self._session: Any = None
        self._lock = threading.Lock()

    def _http(self) -> Any:
        with self._lock:
            if self._session is None:
                import requests

                session = requests.Session()
                session.trust_env = False  # never through HTTP(S)_PROXY: that may be engram
                session.headers.update(INTERNAL_HEADERS)
                if self.api_key:
                    session.headers["Authorization"] = f"Bearer {self.api_key}"
                self._session = session
            return self._session

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        import requests

        out: list[np.ndarray] = []
        for start in range(0, len(texts), 256):
            batch = list(texts[start : start + 256])
            try:
                resp = self._http().post(
                    self.url, json={"model": self.model, "input": batch}, timeout=self.timeout
                )
            except requests.RequestException as exc:
                raise EmbedderError(f"embeddings request to {self.url} failed: {exc}") from None
            if resp.status_code != 200:
                raise EmbedderError(
                    f"embeddings endpoint {self.url} answered {resp.status_code}: {resp.text[:200]}"
                )
            out.append(self._parse(resp, len(batch)))
        return normalize(np.concatenate(out))

    def load(self) -> None:
        """Nothing to load; the first answer tells the vector size."""

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    def _parse(self, resp: Any, expected: int) -> np.ndarray:
        try:
            data = sorted(resp.json()["data"], key=lambda d: d.get("index", 0))
            matrix = np.asarray([d["embedding"] for d in data], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbedderError(f"unreadable answer from {self.url}: {exc!r}") from None
        if matrix.ndim != 2 or matrix.shape[0] != expected:
            raise EmbedderError(
                f"{self.url} returned {matrix.shape[0] if matrix.ndim else 0} "
                f"vectors for {expected} texts"
            )
        if self.dim and matrix.shape[1] != self.dim:
            raise EmbedderError(
                f"{self.url} returned {matrix.shape[1]}-d vectors, expected {self.dim}"
            )
        self.dim = int(matrix.shape[1])
        return matrix


def make_embedder(config: Any) -> Embedder | None:
    """The embedder `recall.embedder` names; None for `none` (BM25-only recall).

    `config` is the whole `Config` or its `RecallConfig`.
    """
    rc = getattr(config, "recall", config)
    kind = rc.embedder
    if kind == "onnx":
        from engram.recall.onnx_embedder import OnnxEmbedder

        return OnnxEmbedder(
            rc.onnx_model_dir or None,
            sha256=rc.onnx_sha256 or None,
            threads=rc.onnx_threads,
            pooling=rc.onnx_pooling,
            query_prefix=rc.onnx_query_prefix,
            passage_prefix=rc.onnx_passage_prefix,
            int8=rc.onnx_int8,
            block_int8=rc.onnx_block_int8,
        )
    if kind == "wordllama":
        return WordLlamaEmbedder(rc.wordllama_dim)
    if kind == "openai":
        if not rc.openai_base_url:
            raise EmbedderError("recall.embedder is 'openai' but recall.openai_base_url is unset")
        return OpenAIEmbedder(
            rc.openai_base_url,
            rc.openai_model,
            rc.openai_api_key,
            rc.openai_timeout,
            rc.openai_dim or None,
        )
    if kind == "none":
        return None
    raise EmbedderError(f"unknown recall.embedder {kind!r} (onnx, wordllama, openai or none)")
