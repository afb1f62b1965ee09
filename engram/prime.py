"""`engram prime`: the memories that matter most, for an agent's session-start context.

No query exists at session start, so ranking is by what usually matters: preferences and
gotchas before plain facts, memories that were useful before (use count), newer before
older; the project's own memories before global ones; packed within a token budget.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass

from engram.redact import redact
from engram.store import reader
from engram.store.records import MemoryRecord

KIND_WEIGHT = {"preference": 1.0, "gotcha": 0.9, "procedure": 0.8, "decision": 0.7, "fact": 0.6}


def _tokens(text: str) -> int:
    return math.ceil(len(text.encode("utf-8")) / 3.5)


def rank(memories: list[MemoryRecord]) -> list[MemoryRecord]:
    newest = max((m.created_at for m in memories), default="")

    def score(m: MemoryRecord) -> float:
        recent = 0.1 if m.created_at[:10] == newest[:10] else 0.0
        return KIND_WEIGHT.get(m.kind, 0.5) + 0.2 * math.log1p(m.use_count) + recent

    newest_first = sorted(memories, key=lambda m: m.created_at, reverse=True)
    return sorted(newest_first, key=score, reverse=True)  # stable: ties stay newest first


@dataclass
class Primer:
    project: list[MemoryRecord]
    global_: list[MemoryRecord]

    def render(self, project_dir: str | None) -> str:
        if not self.project and not self.global_:
            return ""
        lines = [
            "# Notes from earlier sessions (engram)",
            "engram kept these from earlier sessions with you; they may be outdated. "
            "Prefer what the user says now.",
            "",
        ]
        if self.project:
            lines.append(f"## This project ({project_dir})")
            lines += [f"- [{m.kind}] {redact(m.content)} ({m.id})" for m in self.project]
            lines.append("")
        if self.global_:
            lines.append("## About the user (all projects)")
            lines += [f"- [{m.kind}] {redact(m.content)} ({m.id})" for m in self.global_]
            lines.append("")
        return "\n".join(lines)


def prime(conn: sqlite3.Connection, project: str | None, budget: int) -> Primer:
    """Project memories first, then global, each ranked, until the budget is spent."""
    spent = _tokens("# Notes from earlier sessions (engram)") + 40
    chosen: dict[str, list[MemoryRecord]] = {"project": [], "global": []}
    groups = [("project", project)] if project else []
    groups.append(("global", "global"))
    for key, scope in groups:
        for m in rank(reader.list_memories(conn, scope=scope)):
            cost = _tokens(m.content) + 8
            if spent + cost > budget:
                continue
            chosen[key].append(m)
            spent += cost
    return Primer(chosen["project"], chosen["global"])
