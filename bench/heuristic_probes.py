"""The heuristic analyzer on single user sentences and on the recall set's requests.

Two checks that need no conversation set, for rules that must hold in any voice:

- bench/data/heuristic_probes: `facts.txt` (durable facts in plain forms: each should
  yield a fact) and `not_facts.txt` (conditions, futures, other people's setups,
  sarcasm, goals, complaints, reported opinions: none should), one sentence a line,
  written for session 5's rules (tuning material, not a held-out set), and
  `facts_scope.txt` / `not_facts_scope.txt` (session 6): rules said for today, this
  demo or during a freeze, other people's advice and repositories, bug reports with
  "always"/"never", past habits; and durable facts in the same frames; and
  `context_join.txt` / `context_alone.txt` (session 6, issue 13's partial facts), two
  sentences a line with the memories expected (`message => memory | memory`, `-` for
  none): a short fact that names nothing concrete carries the user's own instruction or
  question-form correction next to it ("keep prs small. we review within a day"), and
  stays alone next to chatter, a task, a question to the assistant or a time frame;
- the recall set's tuning half (bench/data/recall_gate/tune): its user requests are
  questions and tasks, so the heuristic should store none; its memories read as user
  sentences show how many plainly written facts the rules read.

    .venv/bin/python bench/heuristic_probes.py [--show]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engram.analyzer.heuristic import extract

PROBES = ROOT / "bench" / "data" / "heuristic_probes"
RECALL = ROOT / "bench" / "data" / "recall_gate" / "tune"


def facts(text: str) -> list[str]:
    turns = [{"role": "user", "text": text}]
    return [f.text for f in extract([{"project": "/p", "conversation": "c", "turns": turns}])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--show", action="store_true", help="print the sentences that fail")
    args = parser.parse_args()
    files = [(p.name, True) for p in sorted(PROBES.glob("facts*.txt"))]
    files += [(p.name, False) for p in sorted(PROBES.glob("not_facts*.txt"))]
    for name, want in files:
        lines = [s for s in (PROBES / name).read_text(encoding="utf-8").splitlines() if s]
        got = [(s, facts(s)) for s in lines]
        hits = sum(1 for _, f in got if f)
        print(f"{name}: {hits} of {len(lines)} yield a fact")
        if args.show:
            for s, f in got:
                if bool(f) != want:
                    print(f"  {s!r} -> {f}")
    for path in sorted(PROBES.glob("context_*.txt")):
        pairs = [
            line.split(" => ", 1)
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
        wrong = [
            (message, want, got)
            for message, want in pairs
            if (got := facts(message)) != ([] if want == "-" else want.split(" | "))
        ]
        print(f"{path.name}: {len(pairs) - len(wrong)} of {len(pairs)} as expected")
        if args.show:
            for message, want, got in wrong:
                print(f"  {message!r} -> {got} (expected {want!r})")
    queries = [
        json.loads(line)
        for line in (RECALL / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    stored = [(q["id"], f) for q in queries for f in facts(q["q"])]
    print(f"recall set tuning requests: {len(queries)}, facts stored: {len(stored)}")
    if args.show:
        for qid, f in stored:
            print(f"  {qid}: {f!r}")
    mems = json.loads((RECALL / "memories.json").read_text(encoding="utf-8"))["memories"]
    read = sum(1 for m in mems if facts(m["content"]))
    print(f"recall set tuning memories read as user sentences: {len(mems)}, yield a fact: {read}")


if __name__ == "__main__":
    main()
