"""The labelled redaction corpus (tests/data/redaction) and how a redactor is scored on it.

Shared by tests/test_redact.py (the held-out targets as an assertion) and bench/redact.py
(the table by type). A secret text counts as found when every character of every labelled
secret is inside a redacted span; it is typed right when the span over its first secret
carries the labelled type. A look-alike is a false positive when anything in it is redacted.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

CORPUS = Path(__file__).resolve().parent.parent / "data" / "redaction"
HALVES = ("tuning", "heldout")


class Span(Protocol):
    type: str
    start: int
    end: int


@dataclass(frozen=True)
class Record:
    id: str
    label: str  # "secret" or "benign"
    type: str  # the expected marker type, or the kind of look-alike
    context: str
    secrets: tuple[tuple[str, str], ...]  # (type, value)
    text: str


def load(half: str) -> list[Record]:
    records = []
    with (CORPUS / f"{half}.jsonl").open(encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            secrets = tuple((s["type"], s["value"]) for s in d["secrets"])
            records.append(Record(d["id"], d["label"], d["type"], d["context"], secrets, d["text"]))
    return records


@dataclass
class Score:
    """Counts for one type (secrets) or one kind of look-alike."""

    total: int = 0
    found: int = 0  # secrets: every labelled secret fully redacted
    typed: int = 0  # secrets: ... and the first one under its labelled type
    flagged: int = 0  # look-alikes: something was redacted
    missed: list[str] = field(default_factory=list)  # ids, for the tuning loop

    @property
    def recall(self) -> float:
        return self.found / self.total if self.total else 1.0

    @property
    def fp_rate(self) -> float:
        return self.flagged / self.total if self.total else 0.0


def covered(spans: Sequence[Span], start: int, end: int) -> bool:
    """Whether [start, end) lies inside the union of the spans."""
    pos = start
    for s in sorted(spans, key=lambda s: s.start):
        if s.start <= pos < s.end:
            pos = s.end
        if pos >= end:
            return True
    return pos >= end


def judge(record: Record, find: Callable[[str], Sequence[Span]]) -> tuple[bool, bool]:
    """(found, typed) for a secret record; (flagged, False) for a look-alike."""
    spans = find(record.text)
    if record.label == "benign":
        return bool(spans), False
    found, typed = True, False
    for i, (kind, value) in enumerate(record.secrets):
        at = record.text.find(value)
        while at >= 0:  # every occurrence of the value must be gone
            if not covered(spans, at, at + len(value)):
                found = False
            if i == 0 and any(s.start <= at < s.end and s.type == kind for s in spans):
                typed = True
            at = record.text.find(value, at + 1)
    return found, found and typed


def score(
    records: Sequence[Record], find: Callable[[str], Sequence[Span]]
) -> tuple[dict[str, Score], dict[str, Score]]:
    """Per-type scores for the secret records and per-kind scores for the look-alikes."""
    secrets: dict[str, Score] = defaultdict(Score)
    benign: dict[str, Score] = defaultdict(Score)
    for record in records:
        hit, typed = judge(record, find)
        if record.label == "secret":
            s = secrets[record.type]
            s.total += 1
            s.found += hit
            s.typed += typed
            if not hit:
                s.missed.append(record.id)
        else:
            s = benign[record.type]
            s.total += 1
            s.flagged += hit
            if hit:
                s.missed.append(record.id)
    return dict(secrets), dict(benign)


def totals(scores: dict[str, Score]) -> Score:
    out = Score()
    for s in scores.values():
        out.total += s.total
        out.found += s.found
        out.typed += s.typed
        out.flagged += s.flagged
        out.missed += s.missed
    return out
