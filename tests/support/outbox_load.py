"""A large mirror backlog drained against a MuninnDB stand-in in its own process: shared by
the volume test (20k rows) and `bench/mirror.py` (100k rows)."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from engram.mirror.client import MuninnClient
from engram.mirror.sync import MirrorSettings, Syncer
from engram.store import outbox, schema
from engram.store.db import Store

SCOPES = ("global", "/srv/shop", "/srv/Billing Service")
VAULTS = ("engram-global", "shop", "billing-service")


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


@dataclass
class Drained:
    rows: int
    seconds: float
    samples: list[float]  # this process's RSS (MB) after each step
    counts: dict[str, int]  # the outbox's rows by status at the end
    mirrored: int  # memories MuninnDB holds at the end

    @property
    def growth(self) -> float:
        """RSS growth after the second step: the first steps warm caches and pools."""
        return max(self.samples[1:]) - self.samples[1]


def drain(path: Path, n: int, *, steps: int = 10) -> Drained:
    """Builds an n-row backlog at `path` and syncs it in `steps` runs, sampling RSS between
    them. The stand-in runs in its own process: its n memories must not count here."""
    build_outbox(path, n)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.support.muninn_stub", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    store = Store(path)
    try:
        url = (server.stdout.readline() if server.stdout else b"").decode().strip()
        assert url.endswith("/mcp"), url
        client = MuninnClient(url, timeout=30)
        syncer = Syncer(store, client, MirrorSettings())
        pages = max(1, n // steps // 200)  # the outbox is read 200 rows a page
        samples = []
        start = time.perf_counter()
        for _ in range(steps * 2):  # bounded: twice the steps the backlog needs
            report = syncer.run(max_pages=pages)
            samples.append(rss_mb())
            if report.memories == 0:
                break
        seconds = time.perf_counter() - start
        with store.read() as conn:
            counts = outbox.counts(conn)
        mirrored = sum(client.call("muninn_status", {"vault": v})["total"] for v in VAULTS)
        return Drained(n, seconds, samples, counts, mirrored)
    finally:
        store.close()
        server.terminate()
        server.wait(10)
