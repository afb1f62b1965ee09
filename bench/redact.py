"""Redaction quality by type on both halves of the labelled corpus, and throughput.

Every captured turn, tool result and memory goes through `engram.redact`, so it must find
what other people's secrets look like (recall) without eating the ids, digests and code
that memories are made of (false positives), at a speed that keeps up with capture.

Targets, on the held-out half (never tuned on): recall >= 0.99, false positives <= 0.5 %;
throughput >= 20 MB/s on each text below (one core).

    .venv/bin/python bench/redact.py            # tables for both halves + throughput
    .venv/bin/python bench/redact.py --misses   # + the tuning half's misses, to tune on

Misses are listed for the tuning half only: the held-out half is scored, never read.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from wirefixtures import claude_code_request

from engram.redact import find_secrets, redact
from tests.support.redaction_corpus import HALVES, Score, load, score, totals

RECALL_TARGET = 0.99
FP_TARGET = 0.005
MB_S_TARGET = 20.0


def _table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print()


def _cell(s: Score | None, secrets: bool) -> str:
    if s is None or not s.total:
        return "-"
    return f"{s.found}/{s.total}" if secrets else f"{s.flagged}/{s.total}"


def quality(show_misses: bool) -> bool:
    records = {half: load(half) for half in HALVES}
    scored = {half: score(records[half], find_secrets) for half in HALVES}
    ok = True
    rows = []
    for half in HALVES:
        sec, ben = (totals(x) for x in scored[half])
        recall, fp = sec.recall, ben.fp_rate
        typed = sec.typed / sec.total if sec.total else 1.0
        n_types = len(scored[half][0])
        verdict = "-"
        if half == "heldout":
            ok = recall >= RECALL_TARGET and fp <= FP_TARGET
            verdict = "ok" if ok else "MISS"
        rows.append((half, f"{sec.total} ({n_types} types)", f"{recall:.3f}", f"{typed:.3f}",
                     str(ben.total), f"{100 * fp:.2f} %", verdict))  # fmt: skip
    print("Redaction on the labelled corpus (tests/data/redaction)\n")
    _table(("half", "secret texts", "recall", "typed", "look-alikes", "false pos.",
            f"recall>={RECALL_TARGET} fp<={100 * FP_TARGET:.1f}%"), rows)  # fmt: skip

    kinds = sorted({k for half in HALVES for k in scored[half][0]})
    print("Recall by type (found / secret texts)\n")
    _table(
        ("type", *HALVES),
        [(k, *(_cell(scored[h][0].get(k), True) for h in HALVES)) for k in kinds],
    )
    kinds = sorted({k for half in HALVES for k in scored[half][1]})
    print("False positives by kind of look-alike (redacted / texts)\n")
    _table(
        ("look-alike", *HALVES),
        [(k, *(_cell(scored[h][1].get(k), False) for h in HALVES)) for k in kinds],
    )
    if show_misses:
        by_id = {r.id: r for r in records["tuning"]}
        for title, group in (("missed secrets", 0), ("false positives", 1)):
            ids = [i for s in scored["tuning"][group].values() for i in s.missed]
            print(f"tuning half, {title}: {len(ids)}")
            for i in ids:
                r = by_id[i]
                out = redact(r.text).replace("\n", "⏎")
                print(f"  {i} [{r.context}] {out[:300]}")
            print()
    return ok


def _texts() -> dict[str, str]:
    """Realistic inputs: what the journal redacts (turn text, tool output) at scale."""
    history = json.dumps(claude_code_request()["messages"])
    code = "\n".join(p.read_text() for p in sorted((ROOT / "engram").rglob("*.py")))
    docs = "\n".join(p.read_text() for p in sorted((ROOT / "docs").rglob("*.md")))
    rnd = random.Random(7)
    image = base64.b64encode(rnd.randbytes(600_000)).decode()
    blob = json.dumps({"type": "image", "source": {"type": "base64", "data": image}})
    corpus = "\n".join(r.text for half in HALVES for r in load(half))
    return {
        "Claude Code history (JSON)": history,
        "engram source code": code,
        "docs (markdown prose)": docs,
        "base64 image in JSON": blob,
        "corpus (secret-dense)": corpus,
    }


def _best(fn: Callable[[], object], min_seconds: float = 1.0) -> float:
    fn()
    best = float("inf")
    deadline = time.process_time() + min_seconds
    while time.process_time() < deadline:
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def throughput() -> bool:
    rows = []
    ok = True
    for name, text in _texts().items():
        size = len(text.encode())
        seconds = _best(lambda text=text: redact(text))  # type: ignore[misc]
        mb_s = size / seconds / 1e6
        dense = name.startswith("corpus")
        verdict = "-" if dense else ("ok" if mb_s >= MB_S_TARGET else "SLOW")
        ok = ok and verdict != "SLOW"
        rows.append((name, f"{size / 1024:.0f}", f"{seconds * 1000:.1f}", f"{mb_s:.1f}", verdict))
    print("Throughput of redact() (best of repeated runs, one core)\n")
    _table(("text", "KB", "ms", "MB/s", f">= {MB_S_TARGET:.0f} MB/s"), rows)
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--misses", action="store_true", help="list the tuning half's misses")
    parser.add_argument("--no-speed", action="store_true", help="skip the throughput table")
    args = parser.parse_args()
    ok = quality(args.misses)
    if not args.no_speed:
        ok = throughput() and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
