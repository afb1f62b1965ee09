"""The gate: whether to inject at all, which memories, and the text of the block.

Injecting an irrelevant note costs the user twice (tokens, and an agent nudged the wrong
way), so the default is to inject nothing. A candidate's score is the gate model's
probability that it helps (gate_model.py, fitted on labelled data); the best must
clear `min_score` (the model's calibrated threshold unless `recall.min_score` is set),
and so must every other memory that goes in, with at least `relative_score` x the
best's probability. Then near-duplicates go (the same fact kept globally and per
project, or two phrasings of one fact), and the rest is packed greedily by rank into
`recall.budget_tokens`: a memory that does not fit is skipped and smaller ones after it
may still go in, up to `recall.max_memories`.

The block tells the model what these notes are (from earlier sessions, possibly out of
date) so it weighs them against what it sees now. Memory text is redacted once more on
the way out: a secret that slipped into the store must not be sent upstream.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engram.recall.audit import Outcome
from engram.redact import redact

HEADER = (
    "Notes from earlier sessions with this user (engram long-term memory), most relevant "
    "first. They were true when written but may be outdated: prefer what the code, the "
    "files and the user say now. The ids are for reference only."
)


@dataclass(slots=True)
class Candidate:
    """A memory the rankers proposed, and what the gate made of it."""

    id: str
    content: str
    kind: str
    scope: str
    score: float
    injected: bool = False
    note: str = ""  # why it was left out ("" when injected)
    bm25: float = 0.0
    cosine: float = 0.0
    content_hash: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "content": self.content,
            "kind": self.kind,
            "scope": self.scope,
            "score": round(self.score, 4),
            "injected": self.injected,
            "note": self.note,
            "bm25": round(self.bm25, 4),
            "cosine": round(self.cosine, 4),
        }


@dataclass(frozen=True, slots=True)
class GateSettings:
    min_score: float = 0.5
    max_memories: int = 6
    budget_tokens: int = 2048
    dedup_threshold: float = 0.93
    relative: float = 0.5  # memories after the best need score >= relative * best score


@dataclass(frozen=True, slots=True)
class Decision:
    injected: bool
    reason: str
    block: str | None
    outcome: Outcome


def estimate_tokens(text: str) -> int:
    """A deliberately high token estimate (3 characters a token; code runs ~3.5, prose ~4):
    the budget is a promise to the user, and no tokenizer is loaded on the request path."""
    return len(text) // 3 + 1


def memory_line(candidate: Candidate, project_scope: bool) -> str:
    where = "project" if project_scope else "global"
    text = redact(candidate.content).strip().replace("\n", "\n  ")
    return f"- [{candidate.id}] ({where}, {candidate.kind}) {text}"


def _distinct(score: float, threshold: float) -> str:
    """'0.248 < min_score 0.25', with enough digits that the two never print equal
    (0.2597 against 0.26 once read '0.260 < 0.26')."""
    for digits in (2, 3, 4, 6):
        a, b = f"{score:.{digits + 1}f}", f"{threshold:.{digits}f}"
        if float(a) < float(b):
            return f"{a} < min_score {b}"
    return f"{score!r} < min_score {threshold!r}"


def decide(
    candidates: Sequence[Candidate], vectors: dict[str, np.ndarray], settings: GateSettings
) -> Decision:
    """Mark each candidate injected or not (with a note); return the decision.

    `candidates` are in rank order; `vectors` hold the unit vectors known for them (a
    candidate without one is compared by content hash only).
    """
    if not candidates:
        return Decision(
            False, "no memory shares a word or much meaning with the query", None,
            Outcome.NO_CANDIDATES,
        )  # fmt: skip
    best = max(candidates, key=lambda c: c.score)
    if best.score < settings.min_score:
        for c in candidates:
            c.note = "below min_score"
        return Decision(
            False,
            f"below gate: best {best.id} scores {_distinct(best.score, settings.min_score)}",
            None,
            Outcome.BELOW_GATE,
        )
    floor = max(settings.min_score, settings.relative * best.score)
    used = estimate_tokens(HEADER) + 2
    chosen: list[Candidate] = []
    lines: list[str] = []
    hashes: dict[str, str] = {}
    for c in candidates:
        if c.score < floor:
            c.note = (
                "below min_score"
                if c.score < settings.min_score
                else f"below {settings.relative:.2f} x the best score"
            )
            continue
        if len(chosen) >= settings.max_memories:
            c.note = f"max_memories ({settings.max_memories}) reached"
            continue
        twin = hashes.get(c.content_hash) if c.content_hash else None
        if twin is None:
            twin = _near_duplicate(c, chosen, vectors, settings.dedup_threshold)
        if twin is not None:
            c.note = f"near-duplicate of {twin}"
            continue
        line = memory_line(c, c.scope != "global")
        cost = estimate_tokens(line) + 1
        if used + cost > settings.budget_tokens:
            c.note = "over the token budget"
            continue
        used += cost
        c.injected = True
        chosen.append(c)
        lines.append(line)
        if c.content_hash:
            hashes[c.content_hash] = c.id
    if not chosen:
        return Decision(False, "no memory fit the token budget", None, Outcome.BELOW_GATE)
    reason = (
        f"{len(chosen)} memor{'y' if len(chosen) == 1 else 'ies'} at or above min_score "
        f"{settings.min_score:.2f} (best {best.score:.3f}), ~{used} tokens"
    )
    return Decision(True, reason, HEADER + "\n" + "\n".join(lines), Outcome.INJECTED)


def _near_duplicate(
    c: Candidate, chosen: list[Candidate], vectors: dict[str, np.ndarray], threshold: float
) -> str | None:
    vec = vectors.get(c.id)
    if vec is None:
        return None
    for other in chosen:
        ov = vectors.get(other.id)
        if ov is not None and float(vec @ ov) >= threshold:
            return other.id
    return None
