"""The recall decision of one request, as the journal keeps it (`exchanges.recall`).

Every exchange the proxy or the addon journals carries what recall decided for it: the
memories injected with their scores, or why nothing was. Without it, "the agent got no
memory" had no visible cause (a cold model, a budget, the gate, an empty store ...).

    {"outcome": "injected", "memories": [{"id": "m-...", "score": 0.91}], "ms": 4.2}
    {"outcome": "below gate", "reason": "best 0.31 < 0.55", "best": "m-...", "ms": 3.9}
    {"outcome": "budget exceeded", "reason": "budget exceeded (50 ms)", "ms": 50.0}

`outcome` is one of Outcome's values (a contract: `engram journal --json` carries it);
`reason` is a sentence for people. Tool-loop requests that reused the turn's decision
say `"cached": true`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    INJECTED = "injected"
    BELOW_GATE = "below gate"  # candidates, none likely enough to help
    NO_CANDIDATES = "no candidates"  # no memory shares words or much meaning
    BUDGET = "budget exceeded"  # the proxy stopped waiting (`budget exceeded (N ms)`)
    WARMING = "warming up"  # the model or index was still loading
    DISABLED = "disabled"  # injection off (--no-inject, proxy.inject = false)
    NO_USER_TURN = "no user turn"  # nothing the user typed to search for
    SIDE_CALL = "side call"  # not the conversation: title, summary, token count ...
    FAILED = "failed"  # recall raised; the request went out unchanged


def audit(
    outcome: Outcome,
    reason: str = "",
    *,
    ms: float | None = None,
    memories: list[tuple[str, float]] | None = None,
    cached: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    out: dict[str, Any] = {"outcome": outcome.value}
    if reason and reason != outcome.value:
        out["reason"] = reason
    if memories:
        out["memories"] = [{"id": mid, "score": round(score, 3)} for mid, score in memories]
    if ms is not None:
        out["ms"] = round(ms, 2)
    if cached:
        out["cached"] = True
    out.update({k: v for k, v in extra.items() if v is not None})
    return out


def budget_exceeded(budget_ms: float) -> dict[str, Any]:
    return audit(Outcome.BUDGET, f"budget exceeded ({budget_ms:.0f} ms)", ms=budget_ms)


def describe(record: dict[str, Any] | None) -> str:
    """One line for people: `injected m-abc (0.91), m-def (0.72)` or the reason."""
    if not record:
        return "not recorded"
    outcome = record.get("outcome", "?")
    if outcome == Outcome.INJECTED:
        mems = ", ".join(f"{m['id']} ({m['score']:.2f})" for m in record.get("memories", []))
        text = f"injected {mems}"
    else:
        text = str(record.get("reason") or outcome)
    if record.get("cached"):
        text += " [same turn as before]"
    return text


_SHORT = {
    Outcome.BELOW_GATE: "gate",
    Outcome.NO_CANDIDATES: "none",
    Outcome.BUDGET: "budget",
    Outcome.WARMING: "warming",
    Outcome.DISABLED: "off",
    Outcome.NO_USER_TURN: "no turn",
    Outcome.SIDE_CALL: "side",
    Outcome.FAILED: "failed",
}


def short(record: dict[str, Any] | None) -> str:
    """A table cell: the number of memories injected, or a one-word reason."""
    if not record:
        return ""
    outcome = str(record.get("outcome"))
    if outcome == Outcome.INJECTED:
        return f"{len(record.get('memories', []))} in"
    known = {o.value: o for o in Outcome}
    return _SHORT.get(known[outcome], outcome) if outcome in known else outcome


def summarize(outcomes: dict[str, int], noun: str = "exchange") -> str:
    """`engram run`'s last line from {outcome: requests}:
    `12 exchanges, 9 with memory (2 below gate, 1 side call)`."""
    total = sum(outcomes.values())
    injected = outcomes.get(Outcome.INJECTED.value, 0)
    rest = sorted(
        ((n, o) for o, n in outcomes.items() if o != Outcome.INJECTED.value and n),
        key=lambda item: (-item[0], item[1]),
    )
    text = f"{total} {noun}{'s' if total != 1 else ''}, {injected} with memory"
    if rest:
        text += " (" + ", ".join(f"{n} {o}" for n, o in rest) + ")"
    return text
