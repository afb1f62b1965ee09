"""Packing pending journal rows into analyzer batches.

Rows are grouped by project, kept in capture order, and packed under the input budget;
a conversation bigger than the budget is split, never truncated. `engram analyze
--estimate` plans with the same function, so its numbers are the runner's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engram.analyzer import prompt


@dataclass
class Unit:
    """The turns one journal row contributes (a row may be split across batches)."""

    row_id: int
    project: str | None
    conversation: str
    turns: list[dict[str, Any]]
    last_part: bool = True


@dataclass
class PlannedBatch:
    project: str | None
    units: list[Unit]

    @property
    def finished_rows(self) -> list[int]:
        return sorted({u.row_id for u in self.units if u.last_part})

    def conversations(self) -> list[prompt.ConversationInput]:
        out: list[prompt.ConversationInput] = []
        for u in self.units:
            if out and out[-1].conversation == u.conversation:
                prev = out[-1]
                out[-1] = prompt.ConversationInput(
                    prev.project, prev.conversation, [*prev.turns, *u.turns]
                )
            else:
                out.append(prompt.ConversationInput(u.project, u.conversation, list(u.turns)))
        return out


def plan(rows: Sequence[Any], budget: int) -> list[PlannedBatch]:
    """Group by project (first-seen order), keep capture order, pack under `budget`."""
    by_project: dict[str | None, list[Unit]] = {}
    for row in rows:
        turns = json.loads(row.turns)
        if turns:
            unit = Unit(row.id, row.project, row.conversation, turns)
            by_project.setdefault(row.project, []).extend(_split(unit, budget))
    batches: list[PlannedBatch] = []
    for project, units in by_project.items():
        current: list[Unit] = []
        size = 0
        for unit in units:
            cost_ = _unit_tokens(unit)
            if current and size + cost_ > budget:
                batches.append(PlannedBatch(project, current))
                current, size = [], 0
            current.append(unit)
            size += cost_
        if current:
            batches.append(PlannedBatch(project, current))
    return batches


def _unit_tokens(unit: Unit) -> int:
    return sum(prompt.estimate_tokens(prompt.render_turn(t)) for t in unit.turns) + 20


def _split(unit: Unit, budget: int) -> list[Unit]:
    """A row too big for one call becomes several units; a single turn too big for one
    call is cut in the middle with a visible marker (the model sees that text is gone)."""
    if _unit_tokens(unit) <= budget:
        return [unit]
    parts: list[Unit] = []
    current: list[dict[str, Any]] = []
    size = 0
    for turn in unit.turns:
        t = prompt.estimate_tokens(prompt.render_turn(turn))
        if t > budget:
            turn = {**turn, "text": prompt.trim_middle(turn.get("text", ""), budget * 3)}
            t = prompt.estimate_tokens(prompt.render_turn(turn))
        if current and size + t > budget:
            parts.append(Unit(unit.row_id, unit.project, unit.conversation, current, False))
            current, size = [], 0
        current.append(turn)
        size += t
    parts.append(Unit(unit.row_id, unit.project, unit.conversation, current, True))
    return parts
