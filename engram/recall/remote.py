"""Other recall sources besides this store, merged before the gate (`recall.sources`).

recall defines what it needs from such a source; the composition root (engram/runtime.py)
builds the concrete one (MuninnDB: engram/mirror/recall.py) and passes it in, so recall
never imports a client for another service.

A source's query starts before local ranking, so the two overlap, and is waited for only
until the recall deadline: a slow or unreachable source never delays a request past the
proxy's budget (its answer is then simply not used).
"""

from __future__ import annotations

import concurrent.futures
import sqlite3
from typing import Any, Protocol

from engram.recall import gate


class RemoteSource(Protocol):
    def start(self, query: str, project: str | None) -> concurrent.futures.Future[Any]:
        """Begin the remote query for `query` in `project` (and global); don't wait."""
        ...

    def collect(
        self,
        conn: sqlite3.Connection,
        future: concurrent.futures.Future[Any],
        started: float,
        local: list[gate.Candidate],
        min_score: float,
    ) -> list[gate.Candidate]:
        """The remote hits that add something to `local`, as candidates on the local
        score scale; [] when the deadline passed or the query failed."""
        ...
