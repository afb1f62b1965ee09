"""Recall speed with the default embedder (MiniLM): latency at 10k and 100k memories
(query embedding included), the tool-loop cache, model load time, resident memory.

Targets (issue 12): recall alone p50 <= 5 ms at 100k memories including the query
embedding; a tool-loop cache hit <= 1 ms; the proxy's RSS <= 300 MB (bench/proxy.py
measures the proxy end to end).

Memories are synthetic but shaped like real ones: the head of one labelled-set memory
joined to the tail of another, with words from a few-thousand-word vocabulary of real
words and identifiers sprinkled in, so FTS5 sees a realistic spread of common and rare
terms. Their vectors are stored before timing, as in a running proxy; embedding 100k
memories with MiniLM takes ~15 minutes here, so each synthetic memory's vector is made
from the real embeddings of the two memories it was cut from, plus noise (the rate of
real embedding is measured separately). Such vectors are fine for timing, but they
are ~450 topics repeated, denser with near-ties than a real store's: the sign-code
first pass of large scopes loses 5x as much on them as on real MiniLM vectors
(bench/vector_approx.py). Queries are the 813 labelled requests (tune + held), each
a fresh recall (no conversation, so no cache).

With --ab, the largest store (all visible) is also timed old against new in one process:
the vector index's exact scan (engram/recall/shard.py with SIGN_ROWS out of reach) and
its sign-code first pass, alternating query by query (which goes first alternates too),
so a busy machine's noise falls on both alike. Wall and CPU time of the whole recall and
of the vector search alone are printed for both.

Two scope layouts per size: "worst case" (every memory visible to the request: half in
its project, half global) and "spread" (20 projects, 10% global: what a request sees
is ~1/20th of the projects plus global).

    python bench/recall_speed.py [--sizes 10000,100000] [--ab]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _util import print_table, summary, verdict

DATA = Path(__file__).parent / "data" / "recall_gate"
PROJECT = "/home/dev/work/shop-api"


def base_memories() -> list[str]:
    mem = json.loads((DATA / "tune" / "memories.json").read_text())["memories"]
    mem += json.loads((DATA / "held" / "memories.json").read_text())["memories"]
    return [m["content"] for m in mem]


def synthetic(n: int, layout: str, rng: random.Random) -> list[tuple[str, str, int, int]]:
    """n (content, scope, first base index, second base index)."""
    base = base_memories()
    vocab = sorted({w.lower() for t in base for w in re.findall(r"[A-Za-z]{3,}", t)})
    vocab += [
        f"{a}{b}"
        for a in ("svc", "job", "tbl", "mod", "api", "cfg", "pkg", "dep")
        for b in range(250)
    ]
    projects = [PROJECT] + [f"/home/dev/work/project{i:02d}" for i in range(19)]
    out = []
    for i in range(n):
        a, b = i % len(base), rng.randrange(len(base))
        first, second = base[a].split(), base[b].split()
        words = first[: rng.randint(3, len(first))] + second[rng.randint(0, len(second) - 2) :]
        for _ in range(rng.randint(2, 6)):
            words.insert(rng.randrange(len(words) + 1), rng.choice(vocab))
        text = " ".join(words) + f" (#{i})"
        if layout == "worst":
            scope = PROJECT if i % 2 else "global"
        else:
            scope = "global" if rng.random() < 0.1 else rng.choice(projects)
        out.append((text, scope, a, b))
    return out


def fill(path: Path, items: list[tuple[str, str, int, int]], embedder: Any) -> None:
    """Bulk insert through plain SQL (the FTS triggers still run), one event per memory
    as engram's own writes leave, and a stored vector per memory (see the docstring)."""
    import numpy as np

    from engram.store import schema
    from engram.store.db import Store

    Store(path).ensure()
    base = embedder.embed(base_memories())
    rng = np.random.default_rng(len(items))
    conn = sqlite3.connect(path)
    now = schema.now_iso()
    rows, events, vectors = [], [], []
    for i, (text, scope, a, b) in enumerate(items):
        mid = f"m-{i:08x}"
        chash = schema.content_hash(text)
        rows.append((mid, text, "fact", scope, "bench", now, now, chash))
        events.append((now, "add", mid, "bench"))
        vec = 0.6 * base[a] + 0.4 * base[b] + rng.normal(0, 0.02, base.shape[1])
        vec = (vec / np.linalg.norm(vec)).astype("<f4")
        vectors.append((mid, embedder.name, base.shape[1], vec.tobytes(), chash, now))
    with conn:
        conn.executemany(
            "INSERT INTO memories (id, content, kind, scope, source, created_at, updated_at,"
            " content_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.executemany(
            "INSERT INTO events (at, action, memory_id, actor) VALUES (?,?,?,?)", events
        )
        conn.executemany(
            "INSERT INTO memory_vectors (memory_id, model, dim, vector, content_hash, "
            "updated_at) VALUES (?,?,?,?,?,?)",
            vectors,
        )
    conn.close()


def queries() -> list[str]:
    out = []
    for half in ("tune", "held"):
        for line in (DATA / half / "queries.jsonl").read_text().splitlines():
            out.append(json.loads(line)["q"])
    return out


def ab(recaller: Any, embedder: Any, qs: list[str]) -> list[tuple[str, str, str, str]]:
    """Exact scan (A) against the sign-code pass (B), alternating; see the docstring."""
    import numpy as np

    from engram.recall import shard

    modes = {"exact scan": sys.maxsize, "sign codes + re-score": shard.SIGN_ROWS}
    scopes = (PROJECT, "global")
    qvecs = [embedder.embed_query(q) for q in qs]
    got: dict[str, dict[str, list[float]]] = {m: {} for m in modes}
    for i, (q, qvec) in enumerate(zip(qs, qvecs, strict=True)):
        for name in list(modes)[:: 1 if i % 2 else -1]:
            shard.SIGN_ROWS = modes[name]
            out = got[name]
            start, start_cpu = time.perf_counter(), time.thread_time()
            recaller.index.search(qvec, scopes, 20)
            out.setdefault("vec_wall", []).append((time.perf_counter() - start) * 1000)
            out.setdefault("vec_cpu", []).append((time.thread_time() - start_cpu) * 1000)
            start, start_cpu = time.perf_counter(), time.process_time()
            recaller.recall(q, PROJECT)
            out.setdefault("wall", []).append((time.perf_counter() - start) * 1000)
            out.setdefault("cpu", []).append((time.process_time() - start_cpu) * 1000)
    shard.SIGN_ROWS = modes["sign codes + re-score"]
    rows = []
    for name, out in got.items():
        p50 = {k: float(np.median(v)) for k, v in out.items()}
        rows.append(
            (
                f"  A/B {name}: recall wall / CPU p50; vector search wall / CPU p50",
                f"{p50['wall']:.2f} / {p50['cpu']:.2f} ms; "
                f"{p50['vec_wall']:.2f} / {p50['vec_cpu']:.2f} ms",
                "",
                "",
            )
        )
    return rows


def measure(n: int, layout: str, tmp: Path, embedder: Any, compare: bool = False) -> dict[str, Any]:
    from engram.config import RecallConfig
    from engram.recall.service import Recaller
    from engram.store.db import Store

    path = tmp / f"speed-{n}-{layout}.db"
    fill(path, synthetic(n, layout, random.Random(n)), embedder)
    store = Store(path)
    recaller = Recaller(store, RecallConfig(), embedder=embedder, background=False)
    t = time.perf_counter()
    recaller.warm()  # what a proxy start costs once vectors are stored
    rebuild = time.perf_counter() - t
    qs = queries()
    for q in qs[:20]:
        recaller.recall(q, PROJECT)
    total, cpu, parts = [], [], {"bm25": [], "embed": [], "vector": [], "features": []}
    for q in qs:
        start, start_cpu = time.perf_counter(), time.process_time()
        result = recaller.recall(q, PROJECT)
        total.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
        for k in parts:
            parts[k].append(result.timings_ms.get(k, 0.0))
    cached = []
    for q in qs[:200]:
        recaller.recall(q, PROJECT, conversation="c1")
        start = time.perf_counter()
        recaller.cached(q, PROJECT, "c1")
        cached.append((time.perf_counter() - start) * 1000)
    p50, p99 = summary(total)
    ab_rows = ab(recaller, embedder, qs) if compare else []
    store.close()
    return {
        "ab": ab_rows,
        "p50": p50,
        "p99": p99,
        "cpu_p50": summary(cpu)[0],
        "rebuild_s": rebuild,
        **{f"{k}_p50": summary(v)[0] for k, v in parts.items()},
        "cached_p50": summary(cached)[0],
    }


RSS_SCRIPT = """
import sys, time, resource
t = time.perf_counter()
from engram.config import load as load_config
from engram.recall.embedder import make_embedder
e = make_embedder(load_config()); e.load(); e.embed_query("warm up")
load = time.perf_counter() - t
def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
rss_model = rss()
out = {"load_s": load, "rss_model_mb": rss_model}
if len(sys.argv) > 1:
    from engram.config import RecallConfig
    from engram.recall.service import Recaller
    from engram.store.db import Store
    r = Recaller(Store(sys.argv[1]), RecallConfig(), embedder=e, background=False)
    r.warm(); r.recall("how do i run the tests", "/home/dev/work/shop-api")
    out["rss_index_mb"] = rss()
print(out)
"""


def rss_probe(db: Path | None) -> dict[str, float]:
    args = [sys.executable, "-c", RSS_SCRIPT] + ([str(db)] if db else [])
    done = subprocess.run(
        args, capture_output=True, text=True, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    return eval(done.stdout.strip().splitlines()[-1])  # our own dict literal


def main() -> None:
    from engram.config import load as load_config
    from engram.recall.embedder import make_embedder

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--ab", action="store_true", help="old vs new vector pass, alternating")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    # The configured model (ENGRAM_RECALL_ONNX_BLOCK_INT8=false: the file as shipped).
    embedder = make_embedder(load_config())
    assert embedder is not None, "recall.embedder = none: nothing to measure"
    embedder.load()
    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        loads = [rss_probe(None) for _ in range(3)]
        load_s = sorted(x["load_s"] for x in loads)[1]
        rows.append(
            ("embedder load + first query (median of 3)", f"{load_s * 1000:.0f} ms", "", "")
        )
        rows.append(("RSS, embedder loaded", f"{loads[0]['rss_model_mb']:.0f} MB", "", ""))
        sample = base_memories()[:200]
        t = time.perf_counter()
        embedder.embed(sample)
        rate = len(sample) / (time.perf_counter() - t)
        rows.append(("embedding memories (re-index rate)", f"{rate:.0f} / s", "", ""))
        for n in sizes:
            for layout in ("worst", "spread"):
                m = measure(
                    n, layout, tmp, embedder, args.ab and n == max(sizes) and layout == "worst"
                )
                label = f"{n // 1000}k {'all visible' if layout == 'worst' else '20 projects'}"
                target = "p50 <= 5 ms" if n >= 100_000 and layout == "worst" else ""
                rows.append(
                    (
                        f"recall {label}: p50 / p99",
                        f"{m['p50']:.2f} / {m['p99']:.2f} ms",
                        target,
                        verdict(m["p50"], 5) if target else "",
                    )
                )
                rows.append(
                    (
                        "  CPU time p50, all threads (an idle machine's wall time, roughly)",
                        f"{m['cpu_p50']:.2f} ms",
                        target,
                        verdict(m["cpu_p50"], 5) if target else "",
                    )
                )
                rows.append(
                    (
                        "  parts p50: fts / embed / vectors / gate",
                        f"{m['bm25_p50']:.2f} / {m['embed_p50']:.2f} / {m['vector_p50']:.2f}"
                        f" / {m['features_p50']:.2f} ms",
                        "",
                        "",
                    )
                )
                rows.append(
                    (
                        "  tool-loop cache hit p50",
                        f"{m['cached_p50'] * 1000:.0f} µs",
                        "<= 1 ms",
                        verdict(m["cached_p50"], 1),
                    )
                )
                rows.append(("  index load at start", f"{m['rebuild_s']:.2f} s", "", ""))
                rows.extend(m["ab"])
                if layout == "worst":
                    probe = rss_probe(tmp / f"speed-{n}-worst.db")
                    rows.append(
                        (
                            f"  RSS, embedder + {n // 1000}k index",
                            f"{probe['rss_index_mb']:.0f} MB",
                            "<= 300 MB" if n <= 10_000 else "",
                            verdict(probe["rss_index_mb"], 300) if n <= 10_000 else "",
                        )
                    )
    load = os.getloadavg()
    print_table(
        f"recall speed ({os.cpu_count()} CPUs, load average {load[0]:.1f} / "
        f"{load[1]:.1f} at the end)",
        rows,
    )


if __name__ == "__main__":
    main()
