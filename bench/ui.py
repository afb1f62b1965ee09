"""Web UI benchmark: every page on a heavy store (10k memories, 100k exchanges).

Target (issue 17): every page renders in <= 150 ms of server time. The server is the
real `engram ui` in a subprocess; server time is what it reports in its Server-Timing
header (the view's queries and the template, not the network or the browser).

    .venv/bin/python bench/ui.py [--memories N] [--exchanges N] [--runs N]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT))
from _util import print_table, summary, verdict

from engram.store.db import Store
from tests.support import ui_seed

TARGET_MS = 150.0


def server_ms(response: object) -> float:
    header = response.headers.get("Server-Timing", "")  # type: ignore[attr-defined]
    match = re.search(r"dur=([0-9.]+)", header)
    if not match:
        raise SystemExit(f"no Server-Timing on {response.url}: {response.status_code}")  # type: ignore[attr-defined]
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--exchanges", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    import requests

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "ui.db"
        store = Store(db)
        t = time.perf_counter()
        ui_seed.big(store, memories_n=args.memories, exchanges_n=args.exchanges)
        store.close()
        seed_s = time.perf_counter() - t
        env = {**os.environ, "ENGRAM_DB": str(db), "XDG_DATA_HOME": tmp}
        proc = subprocess.Popen(
            [sys.executable, "-m", "engram", "ui", "--port", "0", "--no-open"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().strip()
            base = url.split("/?")[0]
            session = requests.Session()
            session.trust_env = False
            session.get(url, timeout=30).raise_for_status()
            project = ui_seed.PROJECTS[1]
            middle = args.exchanges // 2
            pages = [
                ("memories, newest", "/memories"),
                ("memories, project + kind", f"/memories?project={project}&kind=fact"),
                ("memories, page 100", "/memories?page=100"),
                ("memories, forgotten", "/memories?status=forgotten"),
                ("memories, search (hybrid)", "/memories?q=deploy+staging+postgres"),
                ("memories, search forgotten (BM25)", "/memories?q=redis+cache&status=forgotten"),
                ("memory detail", "/memories/m-00005000"),
                ("review queue", "/review"),
                ("conversations", "/conversations"),
                ("conversations, one project", f"/conversations?project={project}"),
                ("conversation (25 requests)", "/conversation?key=conv-00500"),
                ("requests, newest", "/requests"),
                ("requests, one project", f"/requests?project={project}"),
                ("requests, older page", f"/requests?before={middle}"),
                ("request detail", f"/requests/{middle}"),
                (
                    "recall playground",
                    f"/playground?q=how+do+we+deploy+to+staging&project={project}",
                ),
                ("health and cost", "/health"),
            ]
            # Warm: the embedding model, the vector index and SQLite's page cache.
            for _name, path in pages:
                session.get(base + path, timeout=120).raise_for_status()
            rows = []
            worst = 0.0
            for name, path in pages:
                samples = []
                for _ in range(args.runs):
                    response = session.get(base + path, timeout=60)
                    response.raise_for_status()
                    samples.append(server_ms(response))
                p50, p99 = summary(samples)
                worst = max(worst, p99)
                rows.append(
                    (
                        f"{name} ({path.split('?')[0]})",
                        f"p50 {p50:.1f} ms, max {max(samples):.1f} ms",
                        f"<= {TARGET_MS:.0f} ms",
                        verdict(max(samples), TARGET_MS),
                    )
                )
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    rows.append(("seeding the store", f"{seed_s:.1f} s", "", ""))
    print_table(
        f"web UI server time per page ({args.memories:,} memories, {args.exchanges:,} exchanges,"
        f" {args.runs} runs each)",
        rows,
    )


if __name__ == "__main__":
    main()
