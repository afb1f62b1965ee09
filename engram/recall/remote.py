"""Other places recall can ask besides this store (`recall.sources`), as one interface.

Recall defines what it needs of a remote source and nothing else: the MuninnDB source
(engram/mirror/source.py) implements it and is built by the composition root from the
config, so recall never imports the mirror's client code.

A source's query starts before local ranking, so the two overlap, and its answer is
waited for only until the recall deadline: a slow or unreachable source never delays a
request past the proxy's budget (its answer is then simply not used).
"""

from __future__ import annotations

import concurrent.futures
import sqlite3
from typing import Any, Protocol

from engram.recall import gate


class RemoteSource(Protocol):
    def start(self, query: str, project: str | None) -> concurrent.futures.Future[Any]:
        """Begin a query in the background."""
        ...

    def collect(
        self,
        conn: sqlite3.Connection,
        future: concurrent.futures.Future[Any],
        started: float,
        local: list[gate.Candidate],
        min_score: float,
    ) -> list[gate.Candidate]:
        """The hits that add something to `local`, as candidates on recall's score scale
        (a hit that just clears the source's own threshold scores `min_score`); [] past
        the deadline (`started` is the recall's perf_counter start)."""
        ...
