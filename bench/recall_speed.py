"""Recall speed: latency at 10k and 100k memories, model load time, resident memory.

Targets (issue: Quality and speed): recall alone p50 <= 10 ms at 100k memories; RSS of a
process with the embedder loaded <= 250 MB. The proxy's whole recall + inject budget is
50 ms, and its added latency target p50 <= 3 ms at 10k.

Memories are synthetic but shaped like real ones: the head of one eval memory joined
to the tail of another, with words from a few-thousand-word vocabulary of real words
and identifiers sprinkled in, so FTS5 sees a realistic spread of common and rare terms
(yet far more repetition than real memories, which makes the two-pass vector search's
job harder than in real use). Vectors are computed and
stored before timing (as they are in a running proxy). Queries are the 154 eval requests.

Two scope layouts per size: "worst case" (every memory visible to the request: half in
its project, half global) and "spread" (20 projects, 10% global: what a request sees
is ~1/20th of the projects plus global).

    python bench/recall_speed.py [--sizes 10000,100000]
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

sys.path.insert(0, str(Path(__file__).parent))
from _util import print_table, summary, verdict

DATA = Path(__file__).parent / "data" / "recall_eval"
PROJECT = "/home/dev/work/shop-api"


def synthetic(n: int, layout: str, rng: random.Random) -> list[tuple[str, str]]:
    """n (content, scope) pairs."""
    mem = json.loads((DATA / "memories.json").read_text())["memories"]
    base = [m["content"] for m in mem]
    vocab = sorted({w.lower() for t in base for w in re.findall(r"[A-Za-z]{3,}", t)})
    vocab += [
        f"{a}{b}"
        for a in ("svc", "job", "tbl", "mod", "api", "cfg", "pkg", "dep")
        for b in range(250)
    ]
    projects = [PROJECT] + [f"/home/dev/work/project{i:02d}" for i in range(19)]
    out = []
    for i in range(n):
        first, second = base[i % len(base)].split(), rng.choice(base).split()
        words = first[: rng.randint(3, len(first))] + second[rng.randint(0, len(second) - 2) :]
        for _ in range(rng.randint(2, 6)):
            words.insert(rng.randrange(len(words) + 1), rng.choice(vocab))
        text = " ".join(words) + f" (#{i})"
        if layout == "worst":
            scope = PROJECT if i % 2 else "global"
        else:
            scope = "global" if rng.random() < 0.1 else rng.choice(projects)
        out.append((text, scope))
    return out


def fill(path: Path, items: list[tuple[str, str]]) -> None:
    """Bulk insert through plain SQL (the FTS triggers still run); one event per memory,
    as engram's own writes leave."""
    from engram.store import schema
    from engram.store.db import Store

    Store(path).ensure()
    conn = sqlite3.connect(path)
    now = schema.now_iso()
    rows, events = [], []
    for i, (text, scope) in enumerate(items):
        mid = f"m-{i:08x}"
        rows.append((mid, text, "fact", scope, "bench", now, now, schema.content_hash(text)))
        events.append((now, "add", mid, "bench"))
    with conn:
        conn.executemany(
            "INSERT INTO memories (id, content, kind, scope, source, created_at, updated_at,"
            " content_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.executemany(
            "INSERT INTO events (at, action, memory_id, actor) VALUES (?,?,?,?)", events
        )
    conn.close()


def queries() -> list[str]:
    qs = json.loads((DATA / "queries.json").read_text())
    return [q["q"] for q in qs["relevant"] + qs["none"]]


def measure(n: int, layout: str, tmp: Path) -> dict[str, float]:
    from engram.config import RecallConfig
    from engram.recall.service import Recaller
    from engram.store.db import Store

    path = tmp / f"speed-{n}-{layout}.db"
    fill(path, synthetic(n, layout, random.Random(n)))
    store = Store(path)
    recaller = Recaller(store, RecallConfig(), background=False)
    t = time.perf_counter()
    recaller.warm()  # embeds and stores every vector: the one-time cost of a new store
    first_build = time.perf_counter() - t
    recaller = Recaller(store, RecallConfig(), background=False)
    recaller.embedder.load()  # type: ignore[union-attr]
    t = time.perf_counter()
    recaller.warm()  # what a proxy start costs once vectors are stored
    rebuild = time.perf_counter() - t
    qs = queries()
    for q in qs[:20]:
        recaller.recall(q, PROJECT)
    total, cpu, parts = [], [], {"bm25": [], "embed": [], "vector": []}
    for _ in range(3):
        for q in qs:
            start, start_cpu = time.perf_counter(), time.thread_time()
            result = recaller.recall(q, PROJECT)
            total.append((time.perf_counter() - start) * 1000)
            cpu.append((time.thread_time() - start_cpu) * 1000)
            for k in parts:
                parts[k].append(result.timings_ms.get(k, 0.0))
    cached = []
    for q in qs:
        recaller.recall(q, PROJECT, conversation="c1")
        start = time.perf_counter()
        recaller.recall(q, PROJECT, conversation="c1")
        cached.append((time.perf_counter() - start) * 1000)
    p50, p99 = summary(total)
    overlap = coarse_recall(recaller, qs)
    store.close()
    return {
        "p50": p50,
        "p99": p99,
        "cpu_p50": summary(cpu)[0],
        "first_build_s": first_build,
        "rebuild_s": rebuild,
        **{f"{k}_p50": summary(v)[0] for k, v in parts.items()},
        "cached_p50": summary(cached)[0],
        "coarse_recall": overlap,
    }


def coarse_recall(recaller: object, qs: list[str], k: int = 20) -> float:
    """Share of the exact top-k (every visible vector scored in full) that the two-pass
    search returns."""
    import numpy as np

    from engram.recall.service import scopes_for

    index = recaller.index  # type: ignore[attr-defined]
    embedder = recaller.embedder  # type: ignore[attr-defined]
    shards = [index._shards[s] for s in scopes_for(PROJECT) if s in index._shards]
    ids = [mid for sh in shards for mid in sh.ids[: sh.n]]
    full = np.concatenate(
        [
            sh.fine[: sh.n].astype(np.float32) if sh.fine is not None else sh.coarse[: sh.n]
            for sh in shards
        ]
    )
    found = 0
    for q in qs:
        vec = embedder.embed([q])[0]
        exact = {ids[i] for i in np.argsort(-(full @ vec))[:k]}
        found += len(exact & {mid for mid, _ in index.search(vec, scopes_for(PROJECT), k)})
    return found / (k * len(qs))


RSS_SCRIPT = """
import sys, time, resource
t = time.perf_counter()
from engram.recall.embedder import WordLlamaEmbedder
e = WordLlamaEmbedder(256); e.load(); e.embed(["warm up"])
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        loads = [rss_probe(None) for _ in range(3)]
        load_s = sorted(x["load_s"] for x in loads)[1]
        rows.append(
            ("embedder load (import + weights, median of 3)", f"{load_s * 1000:.0f} ms", "", "")
        )
        rows.append(
            (
                "RSS, embedder loaded",
                f"{loads[0]['rss_model_mb']:.0f} MB",
                "<= 250 MB",
                verdict(loads[0]["rss_model_mb"], 250),
            )
        )
        for n in sizes:
            for layout in ("worst", "spread"):
                m = measure(n, layout, tmp)
                label = f"{n // 1000}k {'all visible' if layout == 'worst' else '20 projects'}"
                target = (
                    "p50 <= 10 ms"
                    if n >= 100_000 and layout == "worst"
                    else ("p50 <= 3 ms" if n <= 10_000 else "")
                )
                limit = 10 if n >= 100_000 else 3
                rows.append(
                    (
                        f"recall {label}: p50 / p99",
                        f"{m['p50']:.2f} / {m['p99']:.2f} ms",
                        target,
                        verdict(m["p50"], limit) if target else "",
                    )
                )
                rows.append(
                    (
                        "  CPU time p50 (what an idle machine would take)",
                        f"{m['cpu_p50']:.2f} ms",
                        "",
                        "",
                    )
                )
                rows.append(
                    (
                        "  parts p50: fts / embed / vectors",
                        f"{m['bm25_p50']:.2f} / {m['embed_p50']:.2f} / {m['vector_p50']:.2f} ms",
                        "",
                        "",
                    )
                )
                rows.append(
                    ("  unchanged query (cache) p50", f"{m['cached_p50'] * 1000:.0f} µs", "", "")
                )
                rows.append(
                    (
                        "  two-pass search finds the exact top 20",
                        f"{m['coarse_recall'] * 100:.1f}%",
                        "",
                        "",
                    )
                )
                rows.append(
                    (
                        "  index build: first (embed all) / restart",
                        f"{m['first_build_s']:.2f} s / {m['rebuild_s']:.2f} s",
                        "",
                        "",
                    )
                )
                if layout == "worst":
                    probe = rss_probe(tmp / f"speed-{n}-worst.db")
                    rows.append(
                        (
                            f"  RSS, embedder + {n // 1000}k index",
                            f"{probe['rss_index_mb']:.0f} MB",
                            "<= 250 MB",
                            verdict(probe["rss_index_mb"], 250),
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
