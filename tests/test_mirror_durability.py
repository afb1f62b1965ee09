"""The mirror under crashes and volume: SIGKILL of `engram mirror sync` at random points
(with local changes in between) leaves MuninnDB with exactly the local active memories;
a 100,000-row outbox drains with flat memory."""

from __future__ import annotations

import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from conftest import ENGRAM, run_engram

from engram.errors import EngramError
from engram.mirror.client import MuninnClient
from engram.mirror.sync import MirrorSettings, Syncer
from engram.store import memories, outbox, schema
from engram.store.db import Store
from tests.support.muninn_stub import MuninnStub, assert_mirrored
from tests.support.wait import wait_until

SCOPES = ("global", "/srv/shop", "/srv/Billing Service")


def add_batch(store: Store, start: int, n: int) -> list[str]:
    with store.write() as s:
        return [
            memories.add(
                s, f"fact {i}: keep {i % 13} things in mind", scope=SCOPES[i % 3]
            ).memory.id
            for i in range(start, start + n)
        ]


def churn(store: Store, ids: list[str], rng: random.Random, n: int) -> None:
    """Edits, supersedes, forgets and restores, some of memories probably in flight."""
    with store.write() as s:
        for mid in rng.sample(ids, n):
            status = memories.get(s, mid).status
            tag = rng.randrange(10**9)
            try:
                if status != "active":
                    memories.restore(s, mid)
                    continue
                op = rng.choice(("edit", "forget", "supersede"))
                if op == "edit":
                    memories.edit(s, mid, f"edited {tag}")
                elif op == "forget":
                    memories.forget(s, mid)
                else:
                    ids.append(memories.supersede(s, mid, f"replacement {tag}")[1].id)
            except EngramError:  # e.g. restoring a fact that is active again elsewhere
                pass


def test_sigkill_mid_sync_loses_and_duplicates_nothing(store: Store) -> None:
    rng = random.Random(11)
    ids = add_batch(store, 0, 2000)
    with MuninnStub(latency=0.03) as stub:
        env = {
            **os.environ,
            "ENGRAM_DB": str(store.path),
            "ENGRAM_MUNINN_ENABLED": "1",
            "MUNINN_MCP_URL": stub.url,
        }
        kills = 0
        for round_ in range(4):
            proc = subprocess.Popen(
                [*ENGRAM, "mirror", "sync"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            # Kill at a random point *of progress*, not of wall-clock time: on a loaded
            # machine the child may need seconds just to start.
            target = len(stub.memories) + rng.randrange(20, 200)
            wait_until(
                lambda t=target, p=proc: p.poll() is not None or len(stub.memories) >= t,
                timeout=60,
                what="mirror sync progress",
            )
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait(10)
            churn(store, ids, rng, 60)
            ids += add_batch(store, 10_000 * (round_ + 1), 400)
        assert kills >= 3
        assert len(stub.active()) > 0
        stub.latency = 0
        done = run_engram("mirror", "sync", env=env, timeout=120)
        assert done.returncode == 0, done.stderr.decode()
        assert_mirrored(store, stub)
        with store.read() as conn:
            assert outbox.counts(conn)["pending"] == 0 and outbox.counts(conn)["failed"] == 0


def build_outbox(path: Path, n: int) -> None:
    """n active memories and their n pending outbox rows, written directly (fast)."""
    Store(path).ensure()
    now = schema.now_iso()
    conn = sqlite3.connect(path)
    rows = []
    for i in range(n):
        content = f"memory {i} about topic {i % 97}"
        rows.append((f"m-{i:08d}", content, SCOPES[i % 3], now, schema.content_hash(content)))
    conn.executemany(
        "INSERT INTO memories (id, content, kind, scope, source, provenance, status, created_at, "
        "updated_at, use_count, content_hash) VALUES (?, ?, 'fact', ?, 'manual', '[]', "
        "'active', ?, ?, 0, ?)",
        [(a, b, c, d, d, e) for a, b, c, d, e in rows],
    )
    conn.executemany(
        "INSERT INTO mirror_outbox (memory_id, op, payload, status, attempts, created_at) "
        "VALUES (?, 'add', '{}', 'pending', 0, ?)",
        [(r[0], now) for r in rows],
    )
    conn.commit()
    conn.close()


def rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


def test_100k_outbox_drains_with_flat_memory(tmp_path: Path) -> None:
    n = 100_000
    path = tmp_path / "big.db"
    build_outbox(path, n)
    with socket.socket() as sock:  # the stand-in runs in its own process: its 100k
        sock.bind(("127.0.0.1", 0))  # memories must not count in this process's RSS
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.support.muninn_stub", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    store = Store(path)
    try:
        url = (server.stdout.readline() if server.stdout else b"").decode().strip()
        assert url.endswith("/mcp")
        client = MuninnClient(url, timeout=30)
        syncer = Syncer(store, client, MirrorSettings())
        samples = []
        start = time.perf_counter()
        for _ in range(100):  # 10,000 rows per step; measured between steps
            report = syncer.run(max_pages=50)
            samples.append(rss_mb())
            if report.memories == 0:
                break
        elapsed = time.perf_counter() - start
        with store.read() as conn:
            assert outbox.counts(conn) == {"pending": 0, "done": n, "failed": 0}
        totals = sum(
            client.call("muninn_status", {"vault": v})["total"]
            for v in ("engram-global", "shop", "billing-service")
        )
        assert totals == n
        growth = max(samples[1:]) - samples[1]
        print(
            f"\n100k outbox drained in {elapsed:.1f} s; RSS {samples[0]:.1f} MB after 10k "
            f"rows, {samples[1]:.1f} after 20k, {samples[-1]:.1f} at the end, peak "
            f"{max(samples):.1f} (growth after 20k: {growth:.1f} MB)"
        )
        assert growth < 12, samples
    finally:
        store.close()
        server.terminate()
        server.wait(10)
