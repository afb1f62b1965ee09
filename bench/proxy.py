"""Proxy benchmark: latency `engram proxy` adds against calling the API directly.

A real `engram proxy` subprocess (so its RSS is its own) in front of the loopback
stand-in API, with 10k memories in the store and vectors precomputed. Measures added
latency p50/p99 for completion requests that get memory injected (sequential and 16
concurrent), for paths that are only forwarded, streaming time-to-first-byte, and the
proxy's RSS with the embedder loaded. Targets: added p50 <= 3 ms and p99 <= 10 ms with
recall and injection; <= 1 ms p50 forwarded only; RSS <= 250 MB.
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
    rng = random.Random(3)
    store = Store(db)
    with store.write() as session:
        for i in range(N_MEMORIES):
            words = " ".join(rng.choices(WORDS, k=rng.randint(5, 12)))
            memories.add(
                session, f"Note {i}: {words}", scope=rng.choice(["global", PROJECT, "/srv/other"])
            )
        memories.add(session, "The staging database listens on port 5433", scope=PROJECT)
    from engram import config
    from engram.recall.service import Recaller

    Recaller(store, config.load()).warm()  # vectors precomputed, as in steady state
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
            "added, recall + inject, p50",
            f"{added(direct, via, 50):.2f} ms",
            "<= 3 ms",
            verdict(added(direct, via, 50), 3),
        ),
        (
            "added, recall + inject, p99",
            f"{added(direct, via, 99):.2f} ms",
            "<= 10 ms",
            verdict(added(direct, via, 99), 10),
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
            "proxy RSS with the embedder loaded",
            f"{memory:.0f} MB",
            "<= 250 MB",
            verdict(memory, 250),
        ),
    ]
    print_table("proxy benchmark (engram proxy subprocess, loopback stand-in API)", rows)


def _get(session: requests.Session, url: str) -> float:
    start = time.perf_counter()
    session.get(url).raise_for_status()
    return (time.perf_counter() - start) * 1000


if __name__ == "__main__":
    main()
