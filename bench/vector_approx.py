"""How much the sign-code first pass of large shards (engram/recall/shard.py) loses, on
real MiniLM vectors of varied texts, and what it costs.

bench/recall_speed.py makes its 100k vectors by mixing the embeddings of two labelled
memories plus Gaussian noise: fine for timing, but their geometry (450 topics, isotropic
noise) is not a real store's, and how well sign bits rank depends on exactly that. Here
every vector is a real MiniLM embedding of a real-looking text: half are recall_speed's
synthetic memories (cut-and-joined labelled memories with real words and identifiers
sprinkled in), half the first paragraphs of docstrings of the installed Python packages
(developer prose on thousands of topics). Queries are the 813 labelled requests of
bench/data/recall_gate (tune + held: nothing is tuned on this).

For each store size (a random subset of the corpus) and candidate count it prints the
share of the exact top 10 and top 20 (recall's candidate pool, POOL in
bench/recall_eval.py) that the approximate pass returns, and the CPU time of both passes.
Embedding the corpus takes 20-40 minutes on 2 busy cores; the vectors are cached.

    python bench/vector_approx.py [--size 100000] [--cache /tmp/engram-vector-approx]
"""

from __future__ import annotations

import argparse
import ast
import random
import re
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import recall_speed
from _util import print_table


def corpus(n: int) -> list[str]:
    rng = random.Random(7)
    memories = [t for t, *_ in recall_speed.synthetic(n, "worst", random.Random(n))]
    memories = [re.sub(r" \(#\d+\)$", "", t) for t in memories]
    files = sorted(Path(sysconfig.get_paths()["purelib"]).rglob("*.py"))
    rng.shuffle(files)
    seen: set[str] = set()
    docs: list[str] = []
    for path in files:
        try:
            tree = ast.parse(path.read_text(errors="ignore"))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef | ast.Module):
                doc = ast.get_docstring(node)
                para = " ".join(doc.strip().split("\n\n")[0].split()) if doc else ""
                if 30 <= len(para) <= 400 and para not in seen:
                    seen.add(para)
                    docs.append(para)
        if len(docs) >= n // 2:
            break
    docs = docs[: n // 2]
    texts = memories[: n - len(docs)] + docs
    rng.shuffle(texts)
    return texts


def vectors(n: int, cache: Path) -> np.ndarray:
    from engram.recall.onnx_embedder import OnnxEmbedder

    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"vectors-{n}.npy"
    if path.exists():
        return np.load(path)
    texts = corpus(n)
    order = sorted(range(n), key=lambda i: len(texts[i]))  # less padding per batch
    embedder = OnnxEmbedder()
    embedder.load()
    out = np.empty((n, 384), dtype=np.float32)
    for start in range(0, n, 256):
        batch = order[start : start + 256]
        out[batch] = embedder.embed([texts[i] for i in batch])
        print(f"\rembedded {start + len(batch)} / {n}", end="", file=sys.stderr, flush=True)
    np.save(path, out)
    return out


def synthetic_vectors(n: int) -> np.ndarray:
    """recall_speed.py's vectors (two labelled memories mixed, plus noise), to compare."""
    from engram.recall.onnx_embedder import OnnxEmbedder

    embedder = OnnxEmbedder()
    embedder.load()
    base = embedder.embed(recall_speed.base_memories())
    rng = np.random.default_rng(n)
    out = np.empty((n, base.shape[1]), dtype=np.float32)
    for i, (_, _, a, b) in enumerate(recall_speed.synthetic(n, "worst", random.Random(n))):
        vec = 0.6 * base[a] + 0.4 * base[b] + rng.normal(0, 0.02, base.shape[1])
        out[i] = vec / np.linalg.norm(vec)
    return out


def queries() -> np.ndarray:
    from engram.recall.onnx_embedder import OnnxEmbedder

    embedder = OnnxEmbedder()
    embedder.load()
    return np.stack([embedder.embed_query(q) for q in recall_speed.queries()])


def measure(matrix: np.ndarray, qs: np.ndarray, candidates: int) -> dict[str, float]:
    from engram.recall import shard

    shard.SIGN_CANDIDATES = candidates
    rows = shard.Shard(matrix.shape[1], matrix.shape[1], capacity=matrix.shape[0])
    rows.extend([str(i) for i in range(matrix.shape[0])], matrix)
    assert rows.signs is not None
    found10 = found20 = 0.0
    exact_ms: list[float] = []
    approx_ms: list[float] = []
    for q in qs:
        t = time.thread_time()
        scores = matrix @ q
        top = np.argpartition(scores, -20)[-20:]
        exact_ms.append((time.thread_time() - t) * 1000)
        top = top[np.argsort(-scores[top])]
        t = time.thread_time()
        got, _ = rows.top(q, q, 20)
        approx_ms.append((time.thread_time() - t) * 1000)
        found = set(got.tolist())
        found10 += len(found & set(top[:10].tolist())) / 10
        found20 += len(found & set(top.tolist())) / 20
    return {
        "top10": found10 / len(qs),
        "top20": found20 / len(qs),
        "exact_ms": float(np.median(exact_ms)),
        "approx_ms": float(np.median(approx_ms)),
    }


def main() -> None:
    from engram.recall import shard

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--sizes", default="10000,20000,50000,100000")
    parser.add_argument("--candidates", default="250,500,1000,2000")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/engram-vector-approx"))
    parser.add_argument(
        "--synthetic", action="store_true", help="recall_speed.py's mixed vectors instead"
    )
    args = parser.parse_args()
    shard.single_threaded_blas()
    everything = synthetic_vectors(args.size) if args.synthetic else vectors(args.size, args.cache)
    qs = queries()
    rng = np.random.default_rng(0)
    shard.SIGN_ROWS = 0
    rows: list[tuple[str, str, str, str]] = []
    for n in (int(s) for s in args.sizes.split(",")):
        if n > everything.shape[0]:
            continue
        matrix = everything[np.sort(rng.choice(everything.shape[0], n, replace=False))]
        for c in (int(s) for s in args.candidates.split(",")):
            m = measure(matrix, qs, c)
            rows.append(
                (
                    f"{n // 1000}k rows, {c} candidates",
                    f"{m['top10']:.3f} / {m['top20']:.3f}",
                    f"{m['exact_ms']:.2f} ms",
                    f"{m['approx_ms']:.2f} ms",
                )
            )
    kind = "recall_speed.py's synthetic" if args.synthetic else "real"
    print_table(
        f"sign-code first pass vs exact scan (MiniLM, {kind} vectors): share of the exact"
        " top 10 / top 20 found, CPU time p50 of the exact pass, of signs + re-scoring",
        rows,
    )


if __name__ == "__main__":
    main()
