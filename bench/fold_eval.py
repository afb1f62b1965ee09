"""Folding near-duplicates at formation: how often a new fact is wrongly dropped.

Data: bench/data/fold_pairs/ (README there): labelled (stored memory, proposed fact)
pairs, split by topic into a tuning half and a held-out half before anything was
measured. Every pair goes through the real decision, `validate.NearDuplicates.find`,
with the real embedder, the stored memory as the only candidate.

    python bench/fold_eval.py                  # MiniLM (default) and wordllama, both halves
    python bench/fold_eval.py --pairs tune     # every tuning pair: cosine, decision, label

Reported per embedder and half:
- folds: pairs folded; precision: share of those that should fold;
- wrong: pairs folded that must not be (an update, a swapped term, a flipped rule, a
  different fact): the new fact is dropped as "already stored". This is the data-loss
  number and must be 0;
- missed: restatements kept as new memories (a duplicate stored; the cheaper error).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engram.analyzer import validate

DATA = ROOT / "bench" / "data" / "fold_pairs"


@dataclass(frozen=True)
class Pair:
    topic: str
    kind: str
    old: str
    new: str
    fold: bool


def load(half: str) -> list[Pair]:
    out = []
    for path in sorted((DATA / half).glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                out.append(Pair(path.stem, row["kind"], row["old"], row["new"], row["fold"]))
    return out


def embedder(name: str) -> validate.Embedder:
    if name == "minilm":
        from engram.recall.onnx_embedder import OnnxEmbedder

        return OnnxEmbedder()
    from engram.recall.embedder import WordLlamaEmbedder

    return WordLlamaEmbedder()


def decide(near: validate.NearDuplicates, pairs: Sequence[Pair]) -> list[bool]:
    return [near.find(p.new, [validate.Existing("m-0", p.old)]) is not None for p in pairs]


def score(pairs: Sequence[Pair], folded: Sequence[bool]) -> dict[str, float]:
    folds = sum(folded)
    right = sum(f and p.fold for p, f in zip(pairs, folded, strict=True))
    return {
        "pairs": len(pairs),
        "should": sum(p.fold for p in pairs),
        "folds": folds,
        "precision": right / folds if folds else 1.0,
        "wrong": folds - right,
        "missed": sum(p.fold and not f for p, f in zip(pairs, folded, strict=True)),
    }


def show_pairs(near: validate.NearDuplicates, pairs: Sequence[Pair]) -> None:
    cosines = [near._cosines(p.new, [p.old])[0] for p in pairs]
    for p, cos, f in sorted(
        zip(pairs, cosines, decide(near, pairs), strict=True), key=lambda t: -t[1]
    ):
        mark = "ok " if f == p.fold else ("WRONG" if f else "miss")
        print(f"{cos:5.2f} {mark:5} {p.kind:9} {p.new!r} ~ {p.old!r}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedders", default="minilm,wordllama")
    parser.add_argument("--pairs", choices=["tune", "held"], help="list one half's pairs")
    args = parser.parse_args(argv)
    names = args.embedders.split(",")
    if args.pairs:
        show_pairs(validate.NearDuplicates(embedder(names[0])), load(args.pairs))
        return 0
    header = f"{'embedder':10} {'half':5} {'pairs':>5} {'should':>6} {'folds':>5}"
    print(f"{header} {'precision':>9} {'wrong':>5} {'missed':>6}")
    for name in names:
        near = validate.NearDuplicates(embedder(name))
        for half in ("tune", "held"):
            pairs = load(half)
            s = score(pairs, decide(near, pairs))
            print(
                f"{name:10} {half:5} {s['pairs']:5d} {s['should']:6d} {s['folds']:5d}"
                f" {s['precision']:9.2f} {s['wrong']:5d} {s['missed']:6d}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
