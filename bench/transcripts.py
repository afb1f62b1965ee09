"""Transcript back-fill benchmark: 1,000 Claude Code sessions, 50,000 lines.

The sessions are generated in the real format: every line is a record of the session
recorded from Claude Code 2.1 (tests/fixtures/transcripts/claude), in its order, with
its shape and size (attachments, request logs, per-block assistant records, tool calls
and results), given new ids, timestamps, texts and one of 20 projects per session.

Measured, through the real command (`engram ingest DIR --no-analyze`, a subprocess):
the back-fill's lines/s (target >= 5,000) and peak RSS (target <= 200 MB); reading the
same files again (nothing new: every file is skipped by its size and mtime); and one
poll of the follower over the 1,000 known files with nothing new (what following costs
every interval while the agents are idle).

    .venv/bin/python bench/transcripts.py   (ENGRAM_BENCH_SESSIONS, ENGRAM_BENCH_LINES)
"""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT))
from _util import print_table, summary, verdict

SESSIONS = int(os.environ.get("ENGRAM_BENCH_SESSIONS", "1000"))
LINES = int(os.environ.get("ENGRAM_BENCH_LINES", "50000"))
TEMPLATE = next((ROOT / "tests/fixtures/transcripts/claude").glob("*/*.jsonl"))
WORDS = (
    "deploy build test cache index schema migrate retry backoff queue worker token "
    "parser config service release branch review lint format bench profile memory "
    "vector embed recall gate budget stream socket proxy journal cursor offset"
).split()


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def _rewrite(value: Any, rng: random.Random, ids: dict[str, str]) -> Any:
    """New ids for old ones (consistently within a session), new words for texts."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in ("text", "content") and isinstance(item, str) and len(item) < 4000:
                out[key] = _text(rng, max(3, len(item.split()) // 2))
            elif key in ("uuid", "parentUuid", "id", "tool_use_id", "sessionId", "leafUuid"):
                out[key] = ids.setdefault(item, str(uuid.UUID(int=rng.getrandbits(128))))
            else:
                out[key] = _rewrite(item, rng, ids)
        return out
    if isinstance(value, list):
        return [_rewrite(v, rng, ids) for v in value]
    return value


def generate(root: Path) -> int:
    template = [json.loads(line) for line in TEMPLATE.read_text().splitlines()]
    per_session = LINES // SESSIONS
    rng = random.Random(7)
    written = 0
    start = time.time() - 30 * 86400
    for n in range(SESSIONS):
        project = f"/home/dev/project-{n % 20}"
        folder = root / project.replace("/", "-")
        folder.mkdir(parents=True, exist_ok=True)
        session = str(uuid.UUID(int=rng.getrandbits(128)))
        ids: dict[str, str] = {template[0].get("sessionId", ""): session}
        lines = []
        for index in range(per_session):
            record = _rewrite(template[index % len(template)], rng, ids)
            if "cwd" in record:
                record["cwd"] = project
            if "timestamp" in record:
                when = start + n * 2000 + index
                record["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(when))
            lines.append(json.dumps(record, separators=(",", ":")))
        (folder / f"{session}.jsonl").write_text("\n".join(lines) + "\n")
        written += len(lines)
    old = time.time() - 86400  # quiet files: every session is complete
    for path in root.rglob("*.jsonl"):
        os.utime(path, (old, old))
    return written


def ingest(db: Path, root: Path) -> tuple[float, float, dict[str, Any], float]:
    """(seconds, CPU seconds, the --json totals, peak RSS MB) of `engram ingest` run in a
    subprocess. CPU time is reported too: on a shared machine the wall time measures the
    neighbours as much as engram."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    before, cpu = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
    started = time.perf_counter()
    argv = [sys.executable, "-m", "engram", "--db", str(db), "ingest", str(root)]
    done = subprocess.run(
        [*argv, "--no-analyze", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    rss = max(before, usage.ru_maxrss) / 1024
    return elapsed, usage.ru_utime + usage.ru_stime - cpu, json.loads(done.stdout), rss


def idle_poll_ms(db: Path, root: Path, runs: int = 10) -> list[float]:
    from engram.journaling import CapturePolicy
    from engram.sources.transcripts import Target, TranscriptFollower
    from engram.store.db import Store

    follower = TranscriptFollower(
        Store(db), [Target(agent="claude", paths=[root])], CapturePolicy()
    )
    follower.poll()  # loads the files' states once, as the running follower has them
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        follower.poll()
        out.append((time.perf_counter() - started) * 1000)
    return out


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="engram-bench-transcripts-") as tmp:
        root = Path(tmp) / "projects"
        lines = generate(root)
        size = sum(p.stat().st_size for p in root.rglob("*.jsonl")) / 2**20
        db = Path(tmp) / "engram.db"
        seconds, cpu, totals, rss = ingest(db, root)
        again, _cpu, repeat, _ = ingest(db, root)
        poll = summary(idle_poll_ms(db, root))
        rate = lines / seconds
        load = os.getloadavg()[0]
        print_table(
            f"transcript back-fill: {SESSIONS:,} Claude Code sessions, {lines:,} lines, "
            f"{size:.0f} MB",
            [
                ("back-fill", f"{rate:,.0f} lines/s", ">= 5,000", verdict(rate, 5000, True)),
                ("back-fill wall time", f"{seconds:.1f} s (load average {load:.1f})", "", ""),
                ("back-fill per CPU second", f"{lines / cpu:,.0f} lines/s", "", ""),
                (
                    "journaled",
                    f"{totals['exchanges']:,} exchanges, {totals['turns']:,} turns",
                    "",
                    "ok" if totals["exchanges"] > 0 else "MISS",
                ),
                ("peak RSS", f"{rss:.0f} MB", "<= 200 MB", verdict(rss, 200)),
                (
                    "reading them again",
                    f"{again:.1f} s, {repeat['exchanges']} new",
                    "0 new",
                    "ok" if repeat["exchanges"] == 0 else "MISS",
                ),
                (
                    "idle follower poll (median / p99)",
                    f"{poll[0]:.0f} / {poll[1]:.0f} ms",
                    "<= 200 ms",
                    verdict(poll[1], 200),
                ),
            ],
        )


if __name__ == "__main__":
    main()
