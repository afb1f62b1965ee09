"""MiniLM with int8 products: derived once from the pinned model file, cached, pinned.

The packaged MiniLM file stores int8 weights (symmetric, one scale per output column)
behind a `Cast` and a `Mul`, which onnxruntime folds into fp32 weights at load: every
matrix product then runs in fp32 (~7 ms of CPU for a 16-token query on this machine)
and the model holds ~150 MB of fp32 copies. This module rewrites the graph so the same
int8 weights are used as int8, in one of two ways (`derive(model, matmul)`):

- "block" (the default model, model_files.MINILM_Q8BLOCK): every
  `MatMul(x, Mul(Cast(W_q), s)) + bias` becomes onnxruntime's `MatMulNBits` with 8 bits
  and `accuracy_level` 4: each row of the activations is quantized to int8 per block of
  32 values (its own scale per block), multiplied with the int8 weights in integer
  arithmetic, and the bias added in the same kernel. Fine-grained activation scales
  keep the vectors within cosine 0.998 (min) / 0.999 (p1) of the fp32 ones on the
  labelled queries and memories (bench/embed_agreement.py, docs/recall.md), and since
  no scale spans more than one row, a batch's rows equal one-by-one vectors bit for
  bit (query batching stays exact). ~30 % less CPU per query than fp32.
- "dynamic" (`recall.onnx_int8`, opt-in): the pattern onnxruntime's `quantize_dynamic`
  emits and fuses into `DynamicQuantizeMatMul`:
  `DynamicQuantizeLinear(x) -> MatMulInteger(x_q, W_q, x_zero) -> Cast -> Mul(x_scale * s)`,
  i.e. the activations are quantized to uint8 with one scale per call (u8 x s8 kernels,
  AVX-512 VNNI where the CPU has it): ~2x less CPU than fp32, but activation outliers
  make that one scale coarse: vectors agree with fp32 at 0.97-0.99 and a batch's rows
  depend on each other.

In both, the weights are exactly the shipped int8 values and scales (nothing is
re-quantized; "block" stores them column-major as uint8 + 128 with the column's scale
repeated per block, MatMulNBits' layout), and the two embedding tables
(`Gather(Mul(Cast(T_q), s_rows), ids)`) gather the int8 rows and their scales and
dequantize only those: bit-identical values, and no 47 MB fp32 copy of the vocabulary.

Why not `onnxruntime.quantization.quantize_dynamic` / `matmul_nbits_quantizer`: they
need the `onnx` package (27 MB plus ml_dtypes) for a rewrite of a few dozen nodes, and
they cannot see these weights (a MatMul's weight here is a `Mul`'s output, not an
initializer): they would need the model dequantized first and would then round every
weight a second time. The rewrite is done on the protobuf wire format directly (onnx_protobuf.py:
the few fields of ModelProto, GraphProto, NodeProto and TensorProto it touches;
everything else is copied byte for byte), so it needs nothing beyond the standard
library, and its output is a pure function of the input bytes: byte-deterministic, so
each derived file is pinned by sha256 like any packaged file (model_files.DerivedFile).
Each is its own vector space, so stored vectors are re-embedded by the background
reindex when the model changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from engram import paths
from engram.recall.embedder import EmbedderError
from engram.recall.model_files import MINILM_ONNX, MINILM_QINT8, DerivedFile, verify
from engram.recall.onnx_protobuf import (
    FLOAT,
    GRAPH_INITIALIZER,
    GRAPH_NODE,
    GRAPH_VALUE_INFO,
    INT8,
    MODEL_GRAPH,
    MODEL_OPSET,
    OPSET_DOMAIN,
    TENSOR_NAME,
    UINT8,
    VALUE_INFO_NAME,
    Node,
    TransformError,
    fields,
    initializer,
    int_field,
    len_field,
    node,
    parse_node,
    tensor_info,
)

log = logging.getLogger("engram.recall")

BLOCK = 32  # activation values per int8 scale in the "block" rewrite (see derive)
_FLIP_SIGN = bytes(i ^ 0x80 for i in range(256))  # int8 two's complement -> uint8 + 128


# -- the rewrite ----------------------------------------------------------------------------


def _dynamic_matmul(tag: str, x: str, q: str, scale: str, out: str) -> bytes:
    """Per-tensor uint8 activations x the int8 weight (onnxruntime fuses this)."""
    return b"".join(
        (
            node(
                "DynamicQuantizeLinear",
                [x],
                [f"{tag}/x_q", f"{tag}/x_scale", f"{tag}/x_zero"],
                f"{tag}/quantize",
            ),
            node(
                "MatMulInteger",
                [f"{tag}/x_q", q, f"{tag}/x_zero"],
                [f"{tag}/int32"],
                f"{tag}/matmul",
            ),
            node("Cast", [f"{tag}/int32"], [f"{tag}/float"], f"{tag}/cast", to=FLOAT),
            node("Mul", [f"{tag}/x_scale", scale], [f"{tag}/scale"], f"{tag}/scales"),
            node("Mul", [f"{tag}/float", f"{tag}/scale"], [out], f"{tag}/dequantize"),
        )
    )


def _block_weights(w: bytes, s: bytes, k: int, n: int) -> tuple[bytes, bytes]:
    """MatMulNBits' layout of a (k, n) int8 weight with one scale per column: column-major
    uint8 (value + 128, its default zero point), and the column's scale repeated for each
    of its k / BLOCK blocks. Exact: (u8 - 128) * scale is the shipped int8 value * scale."""
    columns = b"".join(w[c::n] for c in range(n)).translate(_FLIP_SIGN)
    blocks = k // BLOCK
    return columns, b"".join(s[4 * c : 4 * c + 4] * blocks for c in range(n))


def derive(
    model: bytes, matmul: str = "dynamic", only: Callable[[int], bool] | None = None
) -> bytes:
    """A faster model from the packaged MiniLM file's bytes (see above), its weight
    products rewritten as `matmul` says: "dynamic" (per-tensor activations,
    DynamicQuantizeLinear + MatMulInteger) or "block" (MatMulNBits, 8 bits, activations
    quantized per 32 values of a row, the bias folded in). `only`: which weight products
    to rewrite, by their order in the graph (six a layer: query, key, value, attention
    output, FFN up, FFN down); the others stay fp32 (bench/embed_agreement.py --subsets).

    TransformError if the graph does not have the expected shape: no int8 weight feeding
    a MatMul (another export), so nothing would get faster."""
    if matmul not in ("dynamic", "block"):
        raise ValueError(f"unknown matmul rewrite {matmul!r}")
    top = list(fields(model))
    graphs = [v for n, _w, v, _ in top if n == MODEL_GRAPH and isinstance(v, bytes)]
    if len(graphs) != 1:
        raise TransformError("not an ONNX model (no single graph)")
    graph = graphs[0]

    nodes: list[Node] = []
    tensors: dict[str, tuple[int, tuple[int, ...]]] = {}
    raws: dict[str, bytes | None] = {}
    for number, _wire, value, raw in fields(graph):
        if number == GRAPH_NODE and isinstance(value, bytes):
            nodes.append(parse_node(raw, value))
        elif number == GRAPH_INITIALIZER and isinstance(value, bytes):
            name, dtype, dims, data = tensor_info(value)
            tensors[name], raws[name] = (dtype, dims), data

    producer = {o: n for n in nodes for o in n.outputs}
    consumers: dict[str, list[Node]] = {}
    for n in nodes:
        for i in n.inputs:
            consumers.setdefault(i, []).append(n)

    chains: list[Node] = []  # the Cast and Mul nodes of the weights rewritten

    def dequantized(tensor: str) -> tuple[str, str, tuple[int, ...], tuple[int, ...]] | None:
        """(int8 initializer, scale initializer, their dims) when `tensor` is
        Mul(Cast(int8 initializer -> float), scale initializer)."""
        mul = producer.get(tensor)
        if mul is None or mul.op != "Mul" or mul.domain or len(mul.inputs) != 2:
            return None
        cast = producer.get(mul.inputs[0])
        scale = mul.inputs[1]
        if cast is None or cast.op != "Cast" or cast.cast_to != FLOAT or scale not in tensors:
            return None
        q = cast.inputs[0]
        if tensors.get(q, (0, ()))[0] != INT8 or tensors[scale][0] != FLOAT:
            return None
        chains.extend((mul, cast))
        return q, scale, tensors[q][1], tensors[scale][1]

    def bias_of(out: str, n: int) -> Node | None:
        """The Add that is `out`'s only use, adding an fp32 initializer of n values."""
        users = consumers.get(out, [])
        if len(users) != 1 or users[0].op != "Add" or users[0].domain:
            return None
        other = [i for i in users[0].inputs if i != out]
        if len(other) != 1 or tensors.get(other[0]) != (FLOAT, (n,)):
            return None
        return users[0]

    replaced: dict[int, bytes] = {}  # id(node) -> its replacement nodes
    products = 0  # weight MatMuls seen, in graph order
    initializers: list[bytes] = []  # added by the "block" rewrite
    gone: set[str] = set()  # values no longer computed, initializers no longer read
    for n in nodes:
        if n.domain or len(n.inputs) != 2 or len(n.outputs) != 1:
            continue
        tag, out = f"engram_dq/{n.name or n.outputs[0]}", n.outputs[0]
        if n.op == "MatMul":
            found = dequantized(n.inputs[1])
            if found is None:
                continue
            q, scale, qdims, sdims = found
            if len(qdims) != 2 or sdims not in ((1, qdims[1]), (qdims[1],)):
                continue  # only one scale per output column is this pattern
            products += 1
            if only is not None and not only(products - 1):
                continue
            if matmul == "dynamic":
                replaced[id(n)] = _dynamic_matmul(tag, n.inputs[0], q, scale, out)
                continue
            k, cols = qdims
            w, s = raws[q], raws[scale]
            if k % BLOCK or w is None or s is None or len(w) != k * cols or len(s) != 4 * cols:
                continue
            packed, scales = _block_weights(w, s, k, cols)
            gone |= {q, scale}  # stored again in MatMulNBits' layout
            initializers.append(initializer(f"{tag}/B", UINT8, (cols, k // BLOCK, BLOCK), packed))
            initializers.append(initializer(f"{tag}/scales", FLOAT, (len(scales) // 4,), scales))
            inputs = [n.inputs[0], f"{tag}/B", f"{tag}/scales"]
            add = bias_of(out, cols)
            if add is not None:  # inputs 3 and 4 (zero points, g_idx) left out
                inputs += ["", "", next(i for i in add.inputs if i != out)]
                replaced[id(add)] = b""
                gone.add(out)
                out = add.outputs[0]
            replaced[id(n)] = node(
                "MatMulNBits",
                inputs,
                [out],
                f"{tag}/block_int8",
                "com.microsoft",
                K=k,
                N=cols,
                bits=8,
                block_size=BLOCK,
                accuracy_level=4,  # int8 products (CompInt8)
            )
        elif n.op == "Gather":
            found = dequantized(n.inputs[0])
            if found is None:
                continue
            q, scale, qdims, sdims = found
            if len(qdims) != 2 or sdims != (qdims[0], 1):
                continue  # one scale per row: gather the rows' scales with them
            ids = n.inputs[1]
            replaced[id(n)] = b"".join(
                (
                    node("Gather", [q, ids], [f"{tag}/rows_q"], f"{tag}/rows"),
                    node("Gather", [scale, ids], [f"{tag}/rows_scale"], f"{tag}/scales"),
                    node("Cast", [f"{tag}/rows_q"], [f"{tag}/rows_f"], f"{tag}/cast", to=FLOAT),
                    node("Mul", [f"{tag}/rows_f", f"{tag}/rows_scale"], [out], f"{tag}/dequant"),
                )
            )
    if not any(n.op == "MatMul" and id(n) in replaced for n in nodes):
        raise TransformError("no MatMul with int8 weights: not the packaged MiniLM graph")

    # The Cast/Mul pairs that only fed rewritten nodes go (repeatedly: a Mul's Cast goes
    # with it), and so does the shape information recorded for their fp32 outputs.
    dropped: set[int] = set()
    changed = True
    while changed:
        changed = False
        for n in chains:
            if id(n) in dropped:
                continue
            users = [c for o in n.outputs for c in consumers.get(o, ())]
            if users and all(id(c) in replaced or id(c) in dropped for c in users):
                dropped.add(id(n))
                changed = True
    gone |= {o for n in nodes if id(n) in dropped for o in n.outputs}
    gone -= {i for n in nodes if id(n) not in dropped and id(n) not in replaced for i in n.inputs}

    out_graph = bytearray()
    for number, _wire, value, raw in fields(graph):
        if number == GRAPH_NODE:
            continue  # written below, in order
        if number in (GRAPH_VALUE_INFO, GRAPH_INITIALIZER) and isinstance(value, bytes):
            key = VALUE_INFO_NAME if number == GRAPH_VALUE_INFO else TENSOR_NAME
            names = [v for k, _w, v, _ in fields(value) if k == key]
            if names and isinstance(names[0], bytes) and names[0].decode() in gone:
                continue
        out_graph += raw
    out_graph += b"".join(initializers)
    body = b"".join(replaced.get(id(n), n.raw) for n in nodes if id(n) not in dropped)
    out_graph = bytearray(body) + out_graph  # nodes first, as exporters write them

    model_out = bytearray()
    opsets = [at for at, (number, *_rest) in enumerate(top) if number == MODEL_OPSET]
    for at, (number, _wire, _value, raw) in enumerate(top):
        model_out += len_field(MODEL_GRAPH, bytes(out_graph)) if number == MODEL_GRAPH else raw
        if initializers and opsets and at == opsets[-1]:  # MatMulNBits' operator set
            model_out += len_field(
                MODEL_OPSET, len_field(OPSET_DOMAIN, b"com.microsoft") + int_field(2, 1)
            )
    return bytes(model_out)


# -- the cached file ------------------------------------------------------------------------


def cache_dir() -> Path:
    """Where derived model files live: `<data dir>/models`."""
    return paths.data_dir() / "models"


def cached_path(derived: DerivedFile = MINILM_QINT8) -> Path:
    """The derived file's place, named by its pinned hash (a new rewrite: a new name)."""
    return cache_dir() / f"{derived.id}-{derived.sha256[:16]}.onnx"


def load_model(derived: DerivedFile = MINILM_QINT8) -> Path | bytes:
    """The derived MiniLM, checked against its pin: the cached file when it is intact,
    else derived now from the pinned packaged file (~0.2-0.4 s) and cached for the next
    process; its bytes in memory when the cache cannot be written (read-only or full
    disk: the model still runs, the next process derives again).

    EmbedderError when it cannot be had at all (the packaged file is missing or fails
    its pin, or the rewrite does not give the pinned bytes): the caller falls back to
    the model as shipped."""
    target = cached_path(derived)
    if target.is_file():
        try:
            return verify(target, derived.sha256, derived.size)
        except EmbedderError:
            log.warning(
                "recall: the cached %s %s fails its pin; deriving it again", derived.id, target
            )
    source = MINILM_ONNX.verified()
    try:
        data = derive(source.read_bytes(), derived.matmul)
    except (TransformError, OSError, MemoryError) as exc:
        raise EmbedderError(f"cannot derive {derived.id} from {source}: {exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != derived.sha256 or len(data) != derived.size:
        raise EmbedderError(
            f"{derived.id} derived from {source} has sha256 {digest[:16]}…, expected "
            f"{derived.sha256[:16]}…"
        )
    try:
        _write_atomically(target, data, derived.id)
    except OSError as exc:
        log.warning(
            "recall: cannot cache %s in %s (%s); using it from memory",
            derived.id,
            target.parent,
            exc.strerror or exc,
        )
        return data
    return target


def _write_atomically(target: Path, data: bytes, model_id: str) -> None:
    """A temp file in the same directory, synced, then renamed over `target`: a reader
    sees the old file, the new one or none, never a half-written one, and two processes
    deriving at once each rename a complete (identical) file. Older rewrites' files go."""
    paths.make_private_dir(target.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    for old in target.parent.glob(f"{model_id}-*.onnx"):
        if old != target:
            with contextlib.suppress(OSError):
                old.unlink()
