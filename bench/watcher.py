"""Watcher benchmark: mitmweb holding 2,000 LLM flows.

Measures the time `engram mitmproxy --once` takes to journal them all (target >= 100
flows/s), what one idle poll costs while mitmweb holds them (--no-prune) and once they
are pruned, and the watcher's peak RSS (target <= 150 MB). Loopback only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).parent))
from _util import print_table, summary, verdict

from engram.sources.mitmweb import MitmwebClient
from engram.sources.watcher import Watcher, WatchSettings
from engram.store.db import Store
from tests.support.llm_stub import LLMStub
from tests.support.mitmweb import Mitmweb

N = int(os.environ.get("ENGRAM_BENCH_FLOWS", "2000"))


def fill(stub: LLMStub, mitm: Mitmweb, n: int) -> None:
    def one(i: int) -> None:
        s = requests.Session()
        s.trust_env = False
        history = [{"role": "user", "content": f"question {i}: how do we deploy service {i}?"}]
        s.post(
            stub.url + "/v1/messages",
            proxies=mitm.proxies(),
            timeout=60,
            headers={"X-Claude-Code-Session-Id": f"bench-{i % 50}"},
            json={
                "model": "claude-haiku-4-5",
                "max_tokens": 64,
                "system": "Primary working directory: /srv/bench",
                "messages": history,
            },
        )

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(n)))


def idle_poll_ms(store: Store, mitm: Mitmweb, prune: bool, runs: int = 10) -> list[float]:
    watcher = Watcher(store, MitmwebClient(mitm.url, mitm.password), WatchSettings(prune=prune))
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        watcher.poll()
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, LLMStub() as stub, Mitmweb() as mitm:
        start = time.perf_counter()
        fill(stub, mitm, N)
        fill_s = time.perf_counter() - start

        # Steady state without pruning: a second store captures everything once, then polls.
        held = Store(Path(tmp) / "noprune.db")
        Watcher(held, MitmwebClient(mitm.url, mitm.password), WatchSettings(prune=False)).poll()
        noprune = idle_poll_ms(held, mitm, prune=False)

        db = Path(tmp) / "engram.db"
        env = {**os.environ, "ENGRAM_DB": str(db), "ENGRAM_MITMWEB_TOKEN": mitm.password}
        cmd = [
            "/usr/bin/time",
            "-f",
            "%M",
            sys.executable,
            "-m",
            "engram",
            "mitmproxy",
            "--url",
            mitm.url,
            "--once",
            "--analyzer",
            "none",
            "--quiet",
        ]
        start = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        capture_s = time.perf_counter() - start
        rss_mb = int(done.stderr.strip().splitlines()[-1]) / 1024

        pruned_store = Store(db)
        pruned = idle_poll_ms(pruned_store, mitm, prune=True)
        import sqlite3

        journaled = sqlite3.connect(db).execute("SELECT count(*) FROM exchanges").fetchone()[0]

    rate = journaled / capture_s
    np50, np99 = summary(noprune)
    p50, p99 = summary(pruned)
    print_table(
        f"watcher benchmark ({N:,} LLM flows held by mitmweb)",
        [
            ("sending them through mitmweb", f"{fill_s:.1f} s", "", ""),
            (
                "capture all (`--once`, with prune)",
                f"{capture_s:.1f} s, {journaled} journaled",
                "",
                "",
            ),
            ("capture rate", f"{rate:.0f} flows/s", ">= 100 flows/s", verdict(rate, 100, True)),
            ("idle poll, flows held (--no-prune) p50/p99", f"{np50:.0f} / {np99:.0f} ms", "", ""),
            ("idle poll after pruning p50/p99", f"{p50:.1f} / {p99:.1f} ms", "", ""),
            ("watcher peak RSS", f"{rss_mb:.0f} MB", "<= 150 MB", verdict(rss_mb, 150)),
        ],
    )


if __name__ == "__main__":
    main()
