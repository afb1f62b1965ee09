"""How closely each way of running the packaged MiniLM agrees with fp32, and what a query costs.

    python bench/embed_agreement.py [--queries 200] [--rounds 3] [--subsets] [--options]

The corpus is neutral on purpose: the tuning half's requests and memory texts
(bench/data/recall_gate/tune/, never held/ or held2/) plus a few probes from the docs,
each embedded as a query and as a memory. A variant is judged by its vectors' cosine to
the fp32 ones (min / p1 / mean), not by the gate's labelled scores: the gate is refitted
for a new space afterwards, and agreement says whether there is anything to refit.

Speed: CPU time (time.thread_time) and wall time of one query embedding, one intra-op
thread, the variants interleaved query by query with the order rotating, so a busy
machine slows all of them alike.

- default rows: fp32 as shipped, the block-int8 default, the per-tensor int8 opt-in;
- `--subsets`: per-tensor int8 on some weight products only (by role and by layer),
  the sensitivity study behind choosing block scales over a mixed-precision graph;
- `--options`: onnxruntime's SkipLayerNormalization fusion (recall leaves it out), and
  other session settings on the fp32 model (optimization level, denormals as zero,
  the memory arena).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TUNE = ROOT / "bench" / "data" / "recall_gate" / "tune"
PROBES = [
    "yes",
    "do it",
    "go",
    "package manager",
    "which package manager do we use?",
    "How do I install dependencies here?",
    "We use pnpm, never npm, in this repo",
]
ROLES = ("query", "key", "value", "attn-out", "ffn-up", "ffn-down")


def corpus() -> tuple[list[str], list[str]]:
    queries = [json.loads(line)["q"] for line in (TUNE / "queries.jsonl").open()]
    mems = [m["content"] for m in json.loads((TUNE / "memories.json").read_text())["memories"]]
    return queries + PROBES, mems + PROBES


def session(model: Path | bytes, **options: Any) -> Any:
    """Recall's own session (onnx_embedder.new_session), or one with other settings."""
    import onnxruntime

    from engram.recall.onnx_embedder import UNFUSED, new_session

    if not options:
        return new_session(onnxruntime, model, 1, packaged=True)
    o = onnxruntime.SessionOptions()
    o.intra_op_num_threads = 1
    o.inter_op_num_threads = 1
    o.enable_cpu_mem_arena = options.get("arena", False)
    o.log_severity_level = 3
    level = options.get("level", "ORT_ENABLE_ALL")
    o.graph_optimization_level = getattr(onnxruntime.GraphOptimizationLevel, level)
    for key, value in options.get("config", {}).items():
        o.add_session_config_entry(key, value)
    source = model if isinstance(model, bytes) else str(model)
    disabled = None if options.get("fused") else UNFUSED
    return onnxruntime.InferenceSession(
        source, o, providers=["CPUExecutionProvider"], disabled_optimizers=disabled
    )


def variants(args: argparse.Namespace) -> dict[str, Callable[[], Any]]:
    from engram.recall.model_files import MINILM_ONNX
    from engram.recall.quantized_model import derive

    shipped = MINILM_ONNX.verified()
    src = shipped.read_bytes()
    out: dict[str, Callable[[], Any]] = {
        "fp32 (as shipped)": lambda: session(shipped),
        "block int8 (default)": lambda: session(derive(src, "block")),
        "per-tensor int8 (onnx_int8)": lambda: session(derive(src, "dynamic")),
    }
    if args.options:
        out["fp32, SkipLayerNorm fused"] = lambda: session(shipped, fused=True)
        out["block int8, SkipLayerNorm fused"] = lambda: session(derive(src, "block"), fused=True)
        out["per-tensor int8, SkipLayerNorm fused"] = lambda: session(
            derive(src, "dynamic"), fused=True
        )
        out["fp32, optimization basic"] = lambda: session(shipped, level="ORT_ENABLE_BASIC")
        out["fp32, optimization extended"] = lambda: session(shipped, level="ORT_ENABLE_EXTENDED")
        out["fp32, denormals as zero"] = lambda: session(
            shipped, config={"session.set_denormal_as_zero": "1"}
        )
        out["fp32, memory arena on"] = lambda: session(shipped, arena=True)
    if args.subsets:

        def subset(name: str, keep: Callable[[int], bool]) -> None:
            out[name] = lambda: session(derive(src, "dynamic", only=keep))

        for r, role in enumerate(ROLES):
            subset(f"per-tensor int8: {role} only", lambda i, r=r: i % 6 == r)
            subset(f"per-tensor int8: all but {role}", lambda i, r=r: i % 6 != r)
        for layer in range(6):
            subset(f"per-tensor int8: layer {layer} only", lambda i, x=layer: i // 6 == x)
        subset("per-tensor int8: query+key+attn-out", lambda i: i % 6 in (0, 1, 3))
        subset("per-tensor int8: all but ffn-down+value", lambda i: i % 6 not in (2, 5))
    return out


def memories_per_cpu_second(e: Any, mems: list[str]) -> float:
    """Re-indexing speed: the memories in recall's batches of similar length."""
    start = time.thread_time()
    for _ in range(2):
        e.embed(mems)
    return 2 * len(mems) / (time.thread_time() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", type=int, default=200, help="queries timed per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--subsets", action="store_true", help="per-tensor int8 on some products")
    ap.add_argument("--options", action="store_true", help="fp32 with other session settings")
    args = ap.parse_args()
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    from engram.recall.onnx_embedder import OnnxEmbedder

    queries, mems = corpus()
    base = OnnxEmbedder()  # the tokenizers, padding and pooling recall uses
    base.load()
    models: dict[str, OnnxEmbedder] = {}
    reference: np.ndarray | None = None
    print(f"{len(queries)} queries + {len(mems)} memories (tune/ and probes)\n")
    print("| variant | cosine to fp32: min | p1 | mean | load (s) |\n|---|---|---|---|---|")
    for name, make in variants(args).items():
        t = time.perf_counter()
        e = copy.copy(base)
        e._session = make()
        load = time.perf_counter() - t
        vecs = np.vstack([np.stack([e.embed_query(q) for q in queries]), e.embed(mems)])
        if reference is None:
            reference = vecs
        cos = np.sum(vecs * reference, axis=1)
        print(
            f"| {name} | {cos.min():.4f} | {np.percentile(cos, 1):.4f} | {cos.mean():.5f} "
            f"| {load:.2f} |",
            flush=True,
        )
        if not name.startswith("per-tensor int8:"):  # subsets: agreement only
            models[name] = e

    names = list(models)
    cpu: dict[str, list[float]] = {n: [] for n in names}
    wall: dict[str, list[float]] = {n: [] for n in names}
    timed = queries[: args.queries]
    for rnd in range(args.rounds):
        for j, text in enumerate(timed):
            at = (j + rnd) % len(names)
            for name in names[at:] + names[:at]:
                c, w = time.thread_time(), time.perf_counter()
                models[name].embed_query(text)
                cpu[name].append(time.thread_time() - c)
                wall[name].append(time.perf_counter() - w)
    load = os.getloadavg()[0]
    print(f"\n{len(timed)} queries x {args.rounds} rounds, interleaved; load average {load:.1f}\n")
    print("| variant | CPU p50 | CPU p90 | wall p50 | wall p90 | CPU vs fp32 | memories / CPU-s |")
    print("|---|---|---|---|---|---|---|")
    fp32 = float(np.percentile(cpu[names[0]], 50))
    for name in names:
        c, w = np.array(cpu[name]) * 1e3, np.array(wall[name]) * 1e3
        print(
            f"| {name} | {np.percentile(c, 50):.2f} ms | {np.percentile(c, 90):.2f} ms "
            f"| {np.percentile(w, 50):.2f} ms | {np.percentile(w, 90):.2f} ms "
            f"| {np.percentile(c, 50) / (fp32 * 1e3):.2f}x "
            f"| {memories_per_cpu_second(models[name], mems):.0f} |"
        )


if __name__ == "__main__":
    main()
