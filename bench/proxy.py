"""Proxy benchmark: latency `engram proxy` adds against calling the API directly.

A real `engram proxy` subprocess (so its RSS is its own) in front of the loopback
stand-in API, with 10k memories in the store and their vectors stored (as in steady
state; embedding 10k memories with MiniLM takes ~2 minutes, so each vector is the
normalized mean of its words' real MiniLM vectors). Every request is a new question in
a new conversation, so each one is a fresh recall with a query embedding; the tool-loop
series repeats a conversation's request (the cached decision). Measured in the same
run against the direct upstream: added latency p50/p99 (sequential and 16 concurrent),
the ratio, forwarding only, streaming time to first byte, and the proxy's RSS.

Targets (issue 12): added p50 <= 5 ms, p99 <= 15 ms; tool-loop cache hit <= 1 ms added;
SSE time to first byte added <= 2 ms; proxy RSS <= 300 MB.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))  # tests.support
from _util import percentile, print_table, verdict

from engram.store import memories
from engram.store.db import Store
from tests.support.llm_stub import LLMStub
from tests.support.mitmweb import free_port

N_MEMORIES = int(os.environ.get("ENGRAM_BENCH_MEMORIES", "10000"))
RUNS = int(os.environ.get("ENGRAM_BENCH_RUNS", "300"))
PROJECT = "/home/dev/shop"
WORDS = (
    "postgres redis pnpm docker pytest deploy staging migration cache token proxy port "
    "release lint kubernetes terraform queue worker cron retry config secret vault "
    "logging metrics nginx webhook"
).split()


def fill(db: Path) -> None:
    import numpy as np

    from engram.recall.onnx_embedder import OnnxEmbedder
    from engram.store import vectors as vector_store

    rng = random.Random(3)
    store = Store(db)
    embedder = OnnxEmbedder()
    word_vecs = dict(zip(WORDS, embedder.embed(WORDS), strict=True))
    rows = []
    with store.write() as session:
        for i in range(N_MEMORIES):
            words = rng.choices(WORDS, k=rng.randint(5, 12))
            added = memories.add(
                session,
                f"Note {i}: {' '.join(words)}",
                scope=rng.choice(["global", PROJECT, "/srv/other"]),
            ).memory
            vec = np.mean([word_vecs[w] for w in words], axis=0)
            vec = (vec / np.linalg.norm(vec)).astype("<f4")
            rows.append((added.id, added.content_hash, vec.tobytes(), 384))
        fact = memories.add(
            session, "The staging database listens on port 5433", scope=PROJECT
        ).memory
        rows.append(
            (
                fact.id,
                fact.content_hash,
                embedder.embed([fact.content])[0].astype("<f4").tobytes(),
                384,
            )
        )
        vector_store.save(session, embedder.name, rows)
    store.close()


_COUNTER = iter(range(10**9))
QUESTIONS = [
    "which port does the staging database listen on?",
    "how do we deploy the worker?",
    "why does the cron retry fail?",
    "where is the redis cache configured?",
    "fix the flaky pytest in the migration suite",
]


def body(stream: bool = False) -> dict:
    """A new question in a new conversation each time: every request needs a fresh recall
    (the anchor measured for MuninnDB-backed peers), not the tool-loop cache."""
    n = next(_COUNTER)
    question = f"{QUESTIONS[n % len(QUESTIONS)]} (case {n})"
    return {
        "model": "claude-haiku-4-5",
        "max_tokens": 32,
        "stream": stream,
        "system": f"You are a coding agent.\nPrimary working directory: {PROJECT}\n",
        "messages": [{"role": "user", "content": question}],
    }


def tool_loop(session: requests.Session, url: str) -> float:
    """A tool loop's next request: the same conversation and user turn, sent again; only
    the second and later sends of a body are timed (the first is its fresh recall)."""
    payload = body()
    timed_post(session, url, payload)
    return timed_post(session, url, payload)


def timed_post(session: requests.Session, url: str, payload: dict) -> float:
    start = time.perf_counter()
    r = session.post(url, json=payload, headers={"x-api-key": "sk-ant-api03-" + "b" * 40})
    r.raise_for_status()
    return (time.perf_counter() - start) * 1000


def ttfb(session: requests.Session, url: str) -> float:
    start = time.perf_counter()
    with session.post(
        url, json=body(stream=True), stream=True, headers={"x-api-key": "sk-ant-api03-" + "b" * 40}
    ) as r:
        next(r.iter_content(1))
        first = (time.perf_counter() - start) * 1000
        for _ in r.iter_content(4096):
            pass
    return first


THINK = 0.1  # an agent's requests are seconds apart (the model is generating); 100 ms
# lets the proxy's background work (journaling, logging) finish as it would in use.


def series(fn, runs: int) -> list[float]:
    fn()  # warm the connection
    out = []
    for _ in range(runs):
        out.append(fn())
        time.sleep(THINK)
    return out


def concurrent(url: str, runs: int, workers: int = 16) -> list[float]:
    def worker(_: int) -> list[float]:
        s = requests.Session()
        s.trust_env = False
        return [timed_post(s, url, body()) for _ in range(max(1, runs // workers))]

    with ThreadPoolExecutor(workers) as pool:
        return [x for chunk in pool.map(worker, range(workers)) for x in chunk]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, LLMStub() as stub:
        db = Path(tmp) / "bench.db"
        fill(db)
        port = free_port()
        env = {**os.environ, "ENGRAM_DB": str(db)}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "engram",
                "proxy",
                "--listen",
                f"127.0.0.1:{port}",
                "--upstream",
                stub.url,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        proxy = f"http://127.0.0.1:{port}"
        s = requests.Session()
        s.trust_env = False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until it injects (recall is warm)
            try:
                timed_post(s, proxy + "/v1/messages", body())
                if "engram-memory" in json.dumps(stub.requests[-1].json):
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)
        try:
            direct = series(lambda: timed_post(s, stub.url + "/v1/messages", body()), RUNS)
            via = series(lambda: timed_post(s, proxy + "/v1/messages", body()), RUNS)
            injected = sum("engram-memory" in json.dumps(r.json) for r in stub.requests[-RUNS:])
            fwd_direct = series(lambda: _get(s, stub.url + "/health"), RUNS)
            fwd_via = series(lambda: _get(s, proxy + "/health"), RUNS)
            c_direct = concurrent(stub.url + "/v1/messages", RUNS)
            c_via = concurrent(proxy + "/v1/messages", RUNS)
            t_direct = series(lambda: ttfb(s, stub.url + "/v1/messages"), RUNS // 3)
            t_via = series(lambda: ttfb(s, proxy + "/v1/messages"), RUNS // 3)
            loop_direct = series(lambda: tool_loop(s, stub.url + "/v1/messages"), RUNS // 3)
            loop_via = series(lambda: tool_loop(s, proxy + "/v1/messages"), RUNS // 3)
            memory = rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(30)

    def added(a: list[float], b: list[float], p: float) -> float:
        return percentile(b, p) - percentile(a, p)

    rows = [
        (
            "requests per series",
            f"{RUNS}, each a fresh recall ({N_MEMORIES:,} memories; {injected} got memory)",
            "",
            "",
        ),
        (
            "direct p50 / p99",
            f"{statistics.median(direct):.2f} / {percentile(direct, 99):.2f} ms",
            "",
            "",
        ),
        (
            "via the proxy p50 / p99 (ratio to direct at p50)",
            f"{statistics.median(via):.2f} / {percentile(via, 99):.2f} ms "
            f"({statistics.median(via) / statistics.median(direct):.2f}x)",
            "",
            "",
        ),
        (
            "added, fresh recall + inject, p50",
            f"{added(direct, via, 50):.2f} ms",
            "<= 5 ms",
            verdict(added(direct, via, 50), 5),
        ),
        (
            "added, fresh recall + inject, p99",
            f"{added(direct, via, 99):.2f} ms",
            "<= 15 ms",
            verdict(added(direct, via, 99), 15),
        ),
        (
            "added, tool loop (the turn's cached decision), p50",
            f"{added(loop_direct, loop_via, 50):.2f} ms",
            "<= 1 ms",
            verdict(added(loop_direct, loop_via, 50), 1),
        ),
        (
            "added, 16 concurrent, p50 / p99",
            f"{added(c_direct, c_via, 50):.2f} / {added(c_direct, c_via, 99):.2f} ms",
            "",
            "",
        ),
        (
            "added, forwarded only (GET), p50",
            f"{added(fwd_direct, fwd_via, 50):.2f} ms",
            "<= 1 ms",
            verdict(added(fwd_direct, fwd_via, 50), 1),
        ),
        (
            "streaming time to first byte, direct / via",
            f"{statistics.median(t_direct):.2f} / {statistics.median(t_via):.2f} ms",
            "",
            "",
        ),
        (
            "streaming time to first byte, added p50",
            f"{statistics.median(t_via) - statistics.median(t_direct):.2f} ms",
            "<= 2 ms",
            verdict(statistics.median(t_via) - statistics.median(t_direct), 2),
        ),
        (
            "proxy RSS with the embedder and 10k index loaded",
            f"{memory:.0f} MB",
            "<= 300 MB",
            verdict(memory, 300),
        ),
    ]
    print_table("proxy benchmark (engram proxy subprocess, loopback stand-in API)", rows)


def _get(session: requests.Session, url: str) -> float:
    start = time.perf_counter()
    session.get(url).raise_for_status()
    return (time.perf_counter() - start) * 1000


if __name__ == "__main__":
    main()
