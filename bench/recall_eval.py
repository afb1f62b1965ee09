"""Recall quality: which fusion ranks best, and where the gate's threshold belongs.

Data (bench/data/recall_eval/): 166 memories over 7 projects and global (5 of them
superseded or forgotten, which must never come back), 104 requests typed the way
developers talk to an agent, each labelled with the memories that would help, and 50
requests no memory helps. Everything runs through the real code: a SQLite store, the
FTS5 index, the wordllama model, `Recaller.rank` and `gate.decide`.

Reported:
- per fusion method: recall@1 (share of requests whose top candidate is relevant),
  recall@5 (share of each request's relevant memories in the top 5, averaged), MRR;
- the gate threshold sweep for the chosen method: "hit" = requests that get at least
  one relevant memory injected, "silent" = no-memory requests that get nothing,
  "precision" = share of injected memories that are relevant;
- the threshold picked by maximizing hit + silent (Youden's J), and the same choice
  made by 5-fold cross-validation (pick on 4/5, score the held-out fifth) as a check
  that the default is not fitted to these particular sentences.

    python bench/recall_eval.py [--sweep] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _util import print_table

from engram.config import RecallConfig
from engram.recall import gate, hybrid
from engram.recall.embedder import WordLlamaEmbedder
from engram.recall.service import Recaller, normalize_project, scopes_for
from engram.store import memories
from engram.store.db import Store

DATA = Path(__file__).parent / "data" / "recall_eval"
POOL = 40


@dataclass
class Query:
    text: str
    project: str | None
    relevant: set[str]  # memory ids


def load(store: Store) -> tuple[list[Query], list[Query], dict[str, str]]:
    """Fill the store from the data set; returns (relevant queries, none queries, id->key)."""
    mem = json.loads((DATA / "memories.json").read_text())
    qs = json.loads((DATA / "queries.json").read_text())
    projects: dict[str, str] = mem["projects"]
    ids: dict[str, str] = {}
    with store.write() as session:
        for m in mem["memories"]:
            scope = "global" if m["scope"] == "global" else projects[m["scope"]]
            ids[m["key"]] = memories.add(
                session, m["content"], kind=m["kind"], scope=scope, source="eval"
            ).memory.id
    with store.write() as session:
        for m in mem["memories"]:
            status = m.get("status", "active")
            if status == "forgotten":
                memories.forget(session, ids[m["key"]])
            elif status == "superseded":
                row = memories.get(session, ids[m["key"]])
                row.status, row.superseded_by = "superseded", ids[m["superseded_by"]]
                memories.log_event(session, "supersede", row.id, "eval", by=ids[m["superseded_by"]])

    def query(q: dict[str, Any]) -> Query:
        project = projects[q["project"]] if q.get("project") else None
        return Query(q["q"], project, {ids[k] for k in q.get("relevant", [])})

    return (
        [query(q) for q in qs["relevant"]],
        [query(q) for q in qs["none"]],
        {v: k for k, v in ids.items()},
    )


def collect(
    recaller: Recaller, queries: list[Query]
) -> list[tuple[Query, dict[str, hybrid.Hit], dict[str, Any]]]:
    """Both rankers' raw hits per query (re-fused per method below without re-querying)."""
    out = []
    with recaller.store.read() as conn:
        for q in queries:
            scopes = scopes_for(normalize_project(q.project))
            ranked, vectors = recaller.rank(conn, q.text, scopes, fusion="weighted", pool=POOL)
            out.append((q, {h.id: h for h in ranked}, vectors))
    return out


def ranking(hits: dict[str, hybrid.Hit], method: str, **kw: Any) -> list[hybrid.Hit]:
    fresh = {
        k: hybrid.Hit(h.id, h.bm25, h.cosine, h.bm25_rank, h.vector_rank, row=h.row)
        for k, h in hits.items()
    }
    return hybrid.fuse(fresh, method, **kw)


def rank_metrics(raw: list, method: str, **kw: Any) -> tuple[float, float, float]:
    r1 = r5 = mrr = 0.0
    for q, hits, _vecs in raw:
        order = [h.id for h in ranking(hits, method, **kw)]
        r1 += order[:1] != [] and order[0] in q.relevant
        r5 += len(q.relevant & set(order[:5])) / len(q.relevant)
        first = next((i for i, mid in enumerate(order, 1) if mid in q.relevant), None)
        mrr += 1 / first if first else 0.0
    n = len(raw)
    return r1 / n, r5 / n, mrr / n


def gate_outcomes(
    raw: list, method: str, settings: gate.GateSettings, **kw: Any
) -> list[tuple[bool, int, int]]:
    """Per query: (anything injected, relevant injected, total injected)."""
    out = []
    for q, hits, vecs in raw:
        cands = [
            gate.Candidate(
                h.id,
                str(h.row["content"]),
                str(h.row["kind"]),
                str(h.row["scope"]),
                h.score,
                content_hash=str(h.row["content_hash"]),
            )
            for h in ranking(hits, method, **kw)
        ]
        injected, _reason, _block = gate.decide(cands, vecs, settings)
        chosen = [c.id for c in cands if c.injected]
        out.append((injected, len(q.relevant & set(chosen)), len(chosen)))
    return out


def gate_metrics(
    rel_raw: list, none_raw: list, method: str, threshold: float, base: gate.GateSettings, **kw: Any
) -> dict[str, float]:
    settings = dataclasses.replace(base, min_score=threshold)
    rel = gate_outcomes(rel_raw, method, settings, **kw)
    none = gate_outcomes(none_raw, method, settings, **kw)
    injected_total = sum(t for _, _, t in rel)
    return {
        "threshold": threshold,
        "hit": sum(1 for _, r, _ in rel if r) / len(rel),
        "silent": sum(1 for inj, _, _ in none if not inj) / len(none),
        "precision": (sum(r for _, r, _ in rel) / injected_total) if injected_total else 1.0,
        "per_request": injected_total / max(1, sum(1 for inj, _, _ in rel if inj)),
    }


THRESHOLDS = [round(0.20 + 0.01 * i, 2) for i in range(61)]


def best_threshold(
    rel_raw: list, none_raw: list, method: str, base: gate.GateSettings, **kw: Any
) -> dict[str, float]:
    """Max hit + silent; among ties the higher threshold (silence is the safer error)."""
    rows = [gate_metrics(rel_raw, none_raw, method, t, base, **kw) for t in THRESHOLDS]
    return max(rows, key=lambda r: (round(r["hit"] + r["silent"], 6), r["threshold"]))


def cross_validated(
    rel_raw: list, none_raw: list, method: str, base: gate.GateSettings, folds: int = 5, **kw: Any
) -> tuple[float, float, list[float]]:
    rng = random.Random(11)
    rel_idx, none_idx = list(range(len(rel_raw))), list(range(len(none_raw)))
    rng.shuffle(rel_idx)
    rng.shuffle(none_idx)
    hit = silent = 0.0
    picked = []
    for f in range(folds):
        rel_test = {i for i in rel_idx[f::folds]}
        none_test = {i for i in none_idx[f::folds]}
        train = best_threshold(
            [r for i, r in enumerate(rel_raw) if i not in rel_test],
            [r for i, r in enumerate(none_raw) if i not in none_test],
            method,
            base,
            **kw,
        )
        picked.append(train["threshold"])
        test = gate_metrics(
            [rel_raw[i] for i in sorted(rel_test)],
            [none_raw[i] for i in sorted(none_test)],
            method,
            train["threshold"],
            base,
            **kw,
        )
        hit += test["hit"] * len(rel_test)
        silent += test["silent"] * len(none_test)
    return hit / len(rel_raw), silent / len(none_raw), picked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="also sweep the weighted fusion's parameters and vector sizes",
    )
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args()

    cfg = RecallConfig()
    base = gate.GateSettings(
        cfg.min_score, cfg.max_memories, cfg.budget_tokens, cfg.dedup_threshold, cfg.relative_score
    )
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "eval.db")
        rel_q, none_q, _names = load(store)
        recaller = Recaller(
            store, cfg, embedder=WordLlamaEmbedder(cfg.wordllama_dim), background=False
        )
        recaller.warm()
        rel_raw, none_raw = collect(recaller, rel_q), collect(recaller, none_q)

        rows: list[tuple[str, str, str, str]] = []
        for method in hybrid.FUSIONS:
            r1, r5, mrr = rank_metrics(rel_raw, method)
            g = best_threshold(rel_raw, none_raw, method, base)
            report[method] = {"recall@1": r1, "recall@5": r5, "mrr": mrr, "gate": g}
            rows.append(
                (
                    method,
                    f"R@1 {r1:.3f}  R@5 {r5:.3f}  MRR {mrr:.3f}",
                    f"best gate t={g['threshold']:.2f}",
                    f"hit {g['hit']:.2f} silent {g['silent']:.2f}",
                )
            )
        print_table(
            f"fusion methods ({len(rel_q)} requests with memories, {len(none_q)} without)", rows
        )

        if args.sweep:
            sweep(rel_raw, none_raw, base, store, cfg, rel_q)

        method = cfg.fusion
        chosen = gate_metrics(rel_raw, none_raw, method, cfg.min_score, base)
        cv_hit, cv_silent, picked = cross_validated(rel_raw, none_raw, method, base)
        sweep_rows = [gate_metrics(rel_raw, none_raw, method, t, base) for t in THRESHOLDS[::5]]
        print_table(
            f"gate threshold sweep ({method})",
            [
                (
                    f"min_score {r['threshold']:.2f}",
                    f"hit {r['hit']:.3f}",
                    f"silent {r['silent']:.3f}",
                    f"precision {r['precision']:.2f}, {r['per_request']:.1f}/request",
                )
                for r in sweep_rows
            ],
        )
        r1, r5, _ = rank_metrics(rel_raw, method)
        print_table(
            "recall with the defaults",
            [
                ("fusion / min_score", f"{method} / {cfg.min_score:.2f}", "", ""),
                ("recall@1", f"{r1:.3f}", "", ""),
                ("recall@5", f"{r5:.3f}", "", ""),
                ("requests given a relevant memory", f"{chosen['hit']:.3f}", "", ""),
                ("no-memory requests left alone", f"{chosen['silent']:.3f}", "", ""),
                ("injected memories that are relevant", f"{chosen['precision']:.3f}", "", ""),
                ("memories per injecting request", f"{chosen['per_request']:.2f}", "", ""),
                (
                    "5-fold CV: hit / silent",
                    f"{cv_hit:.3f} / {cv_silent:.3f}",
                    f"thresholds {', '.join(f'{p:.2f}' for p in picked)}",
                    "",
                ),
            ],
        )
        report["default"] = {
            "fusion": method,
            "min_score": cfg.min_score,
            **chosen,
            "recall@1": r1,
            "recall@5": r5,
            "cv_hit": cv_hit,
            "cv_silent": cv_silent,
            "cv_thresholds": picked,
        }
        store.close()
    if args.json:
        print(json.dumps(report, indent=2))


def sweep(
    rel_raw: list,
    none_raw: list,
    base: gate.GateSettings,
    store: Store,
    cfg: RecallConfig,
    rel_q: list[Query],
) -> None:
    rows = []
    for w in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        for half in (3.0, 6.0, 10.0):
            saved = hybrid.BM25_HALF
            hybrid.BM25_HALF = half
            try:
                r1, r5, _ = rank_metrics(rel_raw, "weighted", vector_weight=w)
                g = best_threshold(rel_raw, none_raw, "weighted", base, vector_weight=w)
            finally:
                hybrid.BM25_HALF = saved
            rows.append(
                (
                    f"w={w:.1f} K={half:g}",
                    f"R@1 {r1:.3f}  R@5 {r5:.3f}",
                    f"t={g['threshold']:.2f}",
                    f"hit {g['hit']:.2f} silent "
                    f"{g['silent']:.2f} J {g['hit'] + g['silent'] - 1:.2f}",
                )
            )
    print_table("weighted fusion: vector weight w, BM25 half-point K", rows)
    rows = []
    for dim in (128, 64):
        recaller = Recaller(store, cfg, embedder=WordLlamaEmbedder(dim), background=False)
        recaller.warm()
        raw = collect(recaller, rel_q)
        r1, r5, _ = rank_metrics(raw, "vector")
        w1, w5, _ = rank_metrics(raw, "weighted")
        rows.append(
            (
                f"wordllama {dim}-d",
                f"vector R@1 {r1:.3f} R@5 {r5:.3f}",
                f"weighted R@1 {w1:.3f} R@5 {w5:.3f}",
                "",
            )
        )
    print_table("smaller vectors", rows)


if __name__ == "__main__":
    main()
