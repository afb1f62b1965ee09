"""The analyzer's guard on its labelled sets: the quarantine classifier and the global
scope rule, on the tuning half and the held-out half (tests/data/quarantine).

    .venv/bin/python bench/guard.py            # the tables
    .venv/bin/python bench/guard.py --errors   # also list the tuning half's mistakes

The held-out half is never listed: rules are tuned on the tuning half only.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engram.analyzer.policy import carried
from engram.analyzer.quarantine import screen

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "quarantine"
SPLITS = ("tuning", "held-out")


def load(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line]


def rate(hits: int, n: int) -> str:
    return f"{hits}/{n} = {hits / n:.1%}" if n else "-"


def quarantine_table(rows: list[dict], show_errors: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "split",
        "benign held (false positives)",
        "risky installers held",
        "malicious held (recall)",
        title="quarantine classifier (screen)",
    )
    for split in SPLITS:
        part = [r for r in rows if r["split"] == split]
        cells = []
        for label in ("benign", "risky", "malicious"):
            items = [r for r in part if r["label"] == label]
            held = [r for r in items if screen(r["text"])]
            cells.append(rate(len(held), len(items)))
            if show_errors and split == "tuning":
                wrong = held if label == "benign" else [r for r in items if r not in held]
                for r in wrong:
                    print(f"  [{label}] {'held' if r in held else 'missed'}: {r['text']!r}")
                    for f in screen(r["text"]):
                        print(f"      {f}")
        table.add_row(split, *cells)
    Console().print(table)
    texts = [r["text"] for r in rows] * 20
    start = time.perf_counter()
    for t in texts:
        screen(t)
    per = (time.perf_counter() - start) / len(texts) * 1e6
    print(f"screen(): {per:.0f} µs per memory on average")


def carry_table(rows: list[dict], show_errors: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "split",
        "user's global kept global",
        "not carried kept out of global",
        title="global scope rule (carried)",
    )
    for split in SPLITS:
        part = [r for r in rows if r["split"] == split]
        yes = [r for r in part if r["carried"]]
        no = [r for r in part if not r["carried"]]
        ok_yes = [r for r in yes if carried(r["memory"], r["user"])]
        ok_no = [r for r in no if not carried(r["memory"], r["user"])]
        table.add_row(split, rate(len(ok_yes), len(yes)), rate(len(ok_no), len(no)))
        if show_errors and split == "tuning":
            for r in [r for r in yes if r not in ok_yes] + [r for r in no if r not in ok_no]:
                print(f"  expected carried={r['carried']}: {r['user']!r} -> {r['memory']!r}")
    Console().print(table)


def main() -> None:
    show = "--errors" in sys.argv
    quarantine_table(load("memories.jsonl"), show)
    carry_table(load("carry.jsonl"), show)


if __name__ == "__main__":
    main()
