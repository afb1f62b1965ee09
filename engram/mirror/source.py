"""MuninnDB as a second recall source (`recall.sources = ["local", "muninn"]`): the
mirror's implementation of recall's `RemoteSource` (engram/recall/remote.py).

The MuninnDB query starts before local ranking, so the two overlap, and is waited for
only until the recall deadline: a slow or unreachable MuninnDB never delays a request
past the proxy's budget (its answer is then simply not used). Hits that are this
store's own mirror copies, or say what a local candidate already says (same normalized
content), are dropped; the rest join the local candidates before the gate.

MuninnDB's scores are its own combined score in [0, 1], on another scale than local
ones (full-text-only servers stay below ~0.4). A hit's score is mapped linearly from
[muninn.recall_threshold, 1] onto [min_score, 1] (the gate's threshold): the threshold
is the explicit gate for MuninnDB hits, and stronger hits still rank higher.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from typing import Any

from engram.recall import gate

log = logging.getLogger("engram.recall")


class MuninnSource:
    def __init__(self, config: Any, budget_s: float) -> None:
        from engram.mirror.vault import make_client

        self.muninn = config.muninn
        self.client = make_client(self.muninn)
        self.budget_s = budget_s
        self.pool = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="muninn")

    @classmethod
    def create(cls, config: Any) -> MuninnSource | None:
        """A source when the full config asks for one and the mirror is set up; else None."""
        recall = getattr(config, "recall", None)
        muninn = getattr(config, "muninn", None)
        if recall is None or muninn is None or "muninn" not in recall.sources:
            return None
        if not muninn.enabled:
            log.warning("recall.sources has muninn but muninn.enabled is false: local only")
            return None
        proxy = getattr(config, "proxy", None)
        budget = (proxy.recall_budget_ms if proxy else 50.0) / 1000 * 0.8
        try:
            return cls(config, budget)
        except Exception as exc:  # e.g. a token refused over plain http: local only
            log.warning("MuninnDB recall is off: %s", exc)
            return None

    def start(self, query: str, project: str | None) -> concurrent.futures.Future[Any]:
        from engram.mirror.recall import muninn_candidates
        from engram.mirror.vault import vault_for_scope

        scopes = ["global"] + ([project] if project else [])
        vaults = [vault_for_scope(s, self.muninn.vault, self.muninn.global_vault) for s in scopes]
        return self.pool.submit(
            muninn_candidates,
            self.client,
            query,
            vaults,
            self.muninn.recall_limit,
            self.muninn.recall_threshold,
            self.budget_s,
        )

    def scale(self, score: float, min_score: float) -> float:
        low = self.muninn.recall_threshold
        if score < low or low >= 1:
            return 0.0
        return min_score + (score - low) / (1 - low) * (1 - min_score)

    def collect(
        self,
        conn: Any,
        future: concurrent.futures.Future[Any],
        started: float,
        local: list[gate.Candidate],
        min_score: float,
    ) -> list[gate.Candidate]:
        """The MuninnDB hits that add something, as candidates; [] past the deadline."""
        from engram.mirror.recall import local_copies

        remaining = self.budget_s - (time.perf_counter() - started)
        try:
            hits = future.result(timeout=max(0.0, remaining))
        except Exception:  # timed out or failed: this request goes with local memories
            return []
        own = local_copies(conn, hits)
        known = {c.content_hash for c in local}
        out = []
        for hit in hits:
            if hit.id in own or hit.content_hash in known:
                continue
            known.add(hit.content_hash)
            out.append(
                gate.Candidate(
                    f"muninn:{hit.id}",
                    hit.content,
                    "fact",
                    f"muninn:{hit.vault}",
                    self.scale(hit.score, min_score),
                    content_hash=hit.content_hash,
                )
            )
        return out
