"""Store benchmark: 10k memories; list/search latency; cold start of `engram --help`,
`engram list --limit 5` and `engram status` (subprocesses, median of 15).

Targets (issue: Foundation): cold start <= 300 ms, search p50 <= 5 ms at 10k.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import print_table, summary, timed, verdict

from engram.store import memories, reader
from engram.store.db import Store

WORDS = (
    "postgres redis pnpm npm docker compose pytest ruff make deploy staging "
    "production migration alembic schema index cache token auth oauth session cookie "
    "proxy port build release branch rebase merge lint format typescript python rust "
    "golang kubernetes helm terraform bucket queue worker cron timeout retry backoff "
    "config env secret vault logging tracing metrics grafana prometheus nginx tls "
    "certificate webhook api client "
).split()


def sentence(rng: random.Random, i: int) -> str:
    words = rng.choices(WORDS, k=rng.randint(6, 16))
    return f"Fact {i}: " + " ".join(words) + "."


def main() -> None:
    rng = random.Random(7)
    n = 10_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        store = Store(path)
        start = time.perf_counter()
        with store.write() as session:
            for i in range(n):
                memories.add(
                    session,
                    sentence(rng, i),
                    kind=rng.choice(["fact", "preference", "procedure"]),
                    scope=rng.choice(["global", "/home/dev/app", "/home/dev/api"]),
                )
        insert_s = time.perf_counter() - start

        queries = [" ".join(rng.choices(WORDS, k=rng.randint(1, 4))) for _ in range(200)]
        with store.read() as conn:
            list_ms = timed(lambda: reader.list_memories(conn, limit=50), 200)
            qi = iter(queries * 2)
            search_ms = timed(lambda: reader.search(conn, next(qi), limit=20), 200)
            qs = iter(queries * 2)
            scoped_ms = timed(
                lambda: reader.search(conn, next(qs), scopes=("global", "/home/dev/app"), limit=20),
                200,
            )

        env = {**os.environ, "ENGRAM_DB": str(path)}
        engram = str(Path(sys.executable).parent / "engram")
        cold: dict[str, list[float]] = {}
        for args in (["--help"], ["list", "--limit", "5"], ["status"]):
            cmd = [engram, *args]
            subprocess.run(cmd, env=env, capture_output=True, check=True)  # warm the cache
            runs = cold.setdefault(" ".join(args), [])
            for _ in range(15):
                t = time.perf_counter()
                subprocess.run(cmd, env=env, capture_output=True, check=True)
                runs.append((time.perf_counter() - t) * 1000)
        store.close()

    lp50, lp99 = summary(list_ms)
    sp50, sp99 = summary(search_ms)
    cp50, cp99 = summary(scoped_ms)
    print_table(
        f"store benchmark ({n:,} memories)",
        [
            ("insert 10k (one transaction)", f"{insert_s:.2f} s ({n / insert_s:,.0f}/s)", "", ""),
            ("list --limit 50 p50 / p99", f"{lp50:.2f} / {lp99:.2f} ms", "", ""),
            ("search p50 / p99", f"{sp50:.2f} / {sp99:.2f} ms", "p50 <= 5 ms", verdict(sp50, 5)),
            ("search in 2 scopes p50 / p99", f"{cp50:.2f} / {cp99:.2f} ms", "", ""),
            *[
                (f"cold start `engram {name}` p50", f"{p50:.0f} ms", "<= 300 ms", verdict(p50, 300))
                for name, p50 in ((k, summary(v)[0]) for k, v in cold.items())
            ],
        ],
    )


if __name__ == "__main__":
    main()
