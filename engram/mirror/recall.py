"""MuninnDB as a recall source: memories other machines and agents added.

Used by the recall stage when `recall.sources` includes "muninn":

    hits = muninn_candidates(client, query, ["my-app", "engram-global"], limit=10,
                             threshold=0.2, timeout=0.05)

It returns within `timeout` seconds whatever happens (a slow or dead MuninnDB costs at
most the budget, never more): one `muninn_recall` per vault runs on a short-lived
thread and whatever has not answered by the deadline is left behind; its thread ends
on its own within the same timeout. Errors of any kind give no hits (recall fails open).

An explicit threshold is always sent: without an embedder MuninnDB scores full-text
matches below ~0.4 and its default of 0.5 would return nothing; `memories: null` (no
match) is an empty list. Hits are de-duplicated by engram's content hash (best score
kept), so the caller merges them with local candidates by `content_hash`;
`local_copies` names the hits that are MuninnDB's copies of local memories.
Recall answers carry a summary or a 500-character preview, not always the full text.
"""

from __future__ import annotations

import concurrent.futures
import logging
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engram.errors import log_failure
from engram.mirror.client import MuninnClient, MuninnError
from engram.mirror.vault import make_client, vault_for_scope
from engram.recall import gate
from engram.store import outbox, schema

log = logging.getLogger("engram.mirror.recall")
MAX_QUERY_CHARS = 2000


@dataclass(frozen=True, slots=True)
class MuninnHit:
    id: str  # MuninnDB's id (a ULID)
    vault: str
    content: str
    score: float  # MuninnDB's combined score in [0, 1]
    concept: str
    content_hash: str  # engram's normalized hash of `content`, for de-duplication


def _recall(
    client: MuninnClient, vault: str, query: str, limit: int, threshold: float, timeout: float
) -> list[MuninnHit]:
    hits = []
    for m in client.recall(vault, [query], threshold=threshold, limit=limit, timeout=timeout):
        content, score = m.get("content"), m.get("score", 0.0)
        if not isinstance(content, str) or not content.strip():
            continue
        score = float(score) if isinstance(score, (int, float)) else 0.0
        hits.append(
            MuninnHit(
                m["id"],
                vault,
                content,
                score,
                str(m.get("concept") or ""),
                schema.content_hash(content),
            )
        )
    return hits


def muninn_candidates(
    client: MuninnClient,
    query: str,
    vaults: Sequence[str],
    limit: int,
    threshold: float,
    timeout: float,
) -> list[MuninnHit]:
    """The best `limit` MuninnDB matches for `query` across `vaults`, best first."""
    query = query.strip()[:MAX_QUERY_CHARS]
    vaults = list(dict.fromkeys(vaults))
    if not query or not vaults or limit < 1 or timeout <= 0:
        return []
    deadline = time.monotonic() + timeout
    pool = concurrent.futures.ThreadPoolExecutor(
        max_workers=len(vaults), thread_name_prefix="muninn-recall"
    )
    try:
        futures = [
            pool.submit(_recall, client, v, query, limit, threshold, timeout) for v in vaults
        ]
        done, _late = concurrent.futures.wait(
            futures, timeout=max(0.0, deadline - time.monotonic())
        )
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    best: dict[str, MuninnHit] = {}
    for future in done:
        try:
            hits = future.result()
        except MuninnError as exc:
            log.debug("muninn recall failed: %s", exc)
            continue
        except Exception as exc:  # fail open: recall never breaks a request
            log_failure(log, "muninn recall failed", exc)
            continue
        for hit in hits:
            kept = best.get(hit.content_hash)
            if kept is None or hit.score > kept.score:
                best[hit.content_hash] = hit
    return sorted(best.values(), key=lambda h: -h.score)[:limit]


def local_copies(conn: sqlite3.Connection, hits: Sequence[MuninnHit]) -> dict[str, str]:
    """MuninnDB id -> local memory id, for hits that are this store's own mirror copies."""
    return outbox.local_ids(conn, [(h.vault, h.id) for h in hits])


# -- MuninnDB as a recall source (engram.recall.remote.RemoteSource) --------------------
#
# MuninnDB's scores are its own combined score in [0, 1], on another scale than local
# ones (full-text-only servers stay below ~0.4). A hit's score is mapped linearly from
# [muninn.recall_threshold, 1] onto [recall.min_score, 1]: the threshold is the explicit
# gate for MuninnDB hits, and stronger hits still rank higher.


class MuninnSource:
    def __init__(self, config: Any, budget_s: float) -> None:
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
