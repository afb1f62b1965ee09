"""What analysing the pending journal would cost, before a single call is made.

A back-fill of months of transcripts can queue tens of thousands of turns; with a paid
analyzer that is real money, so `engram ingest` shows this estimate and asks first.
The batches are planned exactly as the runner will plan them (`batching.plan`), so the
number of calls is right; tokens are `prompt.estimate_tokens` (bytes / 3.5, leaning
high) of what each call sends: the system prompt, the rendered turns, and room for the
candidate memories. Output is counted at its cap (`analyzer.max_output_tokens`) per
call, so the cost shown is an upper bound, not a guess that can fall short.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from engram.analyzer import batching, prompt
from engram.analyzer.backends import Backend, cost
from engram.config import AnalyzerConfig
from engram.store import journal
from engram.store.db import Store
from engram.wire.model import Usage

# Candidate memories shown with each batch: at most `analyzer.candidates` of them, each
# a line of up to a few hundred bytes.
_CANDIDATE_TOKENS = 60
_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


@dataclass(frozen=True)
class Estimate:
    exchanges: int
    turns: int
    calls: int
    input_tokens: int
    output_tokens: int  # the cap: max_output_tokens per call
    model: str
    cost_usd: float  # 0.0 when the model has no price (a local or unknown one)
    priced: bool


def estimate(store: Store, settings: AnalyzerConfig, model: str) -> Estimate:
    with store.write() as session:
        rows = journal.pending(session)
    batches = batching.plan(rows, settings.input_budget_tokens)
    fixed = prompt.estimate_tokens(prompt.SYSTEM_PROMPT) + settings.candidates * _CANDIDATE_TOKENS
    input_tokens = 0
    for batch in batches:
        turns = [t for unit in batch.units for t in unit.turns]
        input_tokens += fixed + sum(prompt.estimate_tokens(prompt.render_turn(t)) for t in turns)
    output_tokens = len(batches) * settings.max_output_tokens
    usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
    return Estimate(
        exchanges=len(rows),
        turns=sum(r.new_turns for r in rows),
        calls=len(batches),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        model=model,
        cost_usd=cost(usage, model, settings.prices),
        priced=_priced(model, settings.prices),
    )


def _priced(model: str, prices: dict[str, Any]) -> bool:
    return model in prices or any(model.startswith(name) for name in prices)


def paid_model(backend: Backend, settings: AnalyzerConfig) -> str | None:
    """The model a backend bills for, or None when analysis costs nothing (the offline
    heuristic, a local model, an OpenAI-compatible server on this machine)."""
    if backend.name in ("heuristic", "local"):
        return None
    if backend.name == "openai":
        host = urlparse(settings.openai_base_url or "https://api.openai.com").hostname or ""
        return None if host in _LOOPBACK else backend.model
    return backend.model  # anthropic, or a backend this module does not know: ask first
