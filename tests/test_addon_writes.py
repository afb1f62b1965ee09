"""The mitmproxy addon's writes (injection logs, journal rows under `engram run --mitm`)
wait out a database that takes no writes, and a dropped one is said (engram/sources/
addon.py, deferred_tasks.py: DeferredWriter). The real addon in-process under
mitmproxy's own test context, on a real SQLite file held locked by another connection
(BEGIN IMMEDIATE): they used to get one attempt on an executor whose futures nobody
read, so a lost injection log was silent and a journal row was lost at once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engram.store.db import Store
from tests.support.expect import engram_warnings
from tests.support.flows import anthropic_flow
from tests.support.wait import wait_until

PROJECT = "/home/dev/shop"


@pytest.fixture
def addon(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    """The addon as `engram run --mitm` loads it (injecting and journaling), set up by
    mitmproxy's `running` hook, on a database holding one memory; recall by BM25 alone
    (no model to load) with a gate every request with that memory passes."""
    from mitmproxy.test import taddons

    from engram.sources.addon import EngramAddon
    from engram.store import memories

    store = Store(db_path)
    with store.write() as session:
        memories.add(session, "The staging database listens on port 5433", scope=PROJECT)
    store.close()
    monkeypatch.setenv("ENGRAM_DB", str(db_path))
    monkeypatch.setenv("ENGRAM_STORE_BUSY_TIMEOUT_MS", "50")  # a lock outlasts it at once
    monkeypatch.setenv("ENGRAM_RECALL_EMBEDDER", "none")
    monkeypatch.setenv("ENGRAM_RECALL_MIN_SCORE", "0.05")
    monkeypatch.setenv("ENGRAM_PROJECT", PROJECT)
    a = EngramAddon()
    with taddons.context(a) as tctx:
        tctx.configure(a, engram_capture=True)
        a.running()
        try:
            yield a, tctx
        finally:
            if a._writes.thread.is_alive():  # not stopped by the test itself
                a.done()


def _flow(n: int) -> Any:
    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 20,
        "system": f"You are a coding agent.\nPrimary working directory: {PROJECT}\n",
        "messages": [
            {"role": "user", "content": f"Which port does the staging database use? ({n})"}
        ],
    }
    reply = {
        "id": f"msg_{n}",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": f"Port 5433 ({n})."}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 10, "output_tokens": 3},
    }
    return anthropic_flow(body, reply)


def _through(a: Any, tctx: Any, n: int) -> None:
    """One flow through the addon's hooks, as mitmproxy calls them: memory injected
    (its log deferred by the recall worker), then the response journaled (deferred)."""
    flow = _flow(n)
    tctx.master.event_loop.run_until_complete(a.request(flow))
    assert flow.metadata["engram_recall"]["outcome"] == "injected", flow.metadata
    a.response(flow)


def _rows(db: Path) -> tuple[int, int]:
    conn = sqlite3.connect(db)
    try:
        [(exchanges,)] = conn.execute("SELECT count(*) FROM exchanges WHERE source = 'addon'")
        [(injections,)] = conn.execute("SELECT count(*) FROM events WHERE action = 'inject'")
        return exchanges, injections
    finally:
        conn.close()


@pytest.fixture
def locked(addon: tuple[Any, Any], db_path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holding the write lock, as a long analysis or a backup does."""
    lock = sqlite3.connect(db_path, timeout=0, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    try:
        yield lock
    finally:
        lock.close()


def test_the_addons_writes_wait_out_a_locked_database(
    addon: tuple[Any, Any],
    locked: sqlite3.Connection,
    db_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    a, tctx = addon
    with caplog.at_level("DEBUG", logger="engram.addon"):
        for n in range(3):  # each hook returns while the database refuses writes
            _through(a, tctx, n)
        tasks = a._writes.tasks
        wait_until(lambda: tasks.held and tasks.held[0].failures >= 2, what="retries")
        assert _rows(db_path) == (0, 0)
        locked.execute("ROLLBACK")
        wait_until(lambda: _rows(db_path) == (3, 3), what="every row and every log")
        wait_until(lambda: not tasks.held, what="nothing held")
    assert not engram_warnings(caplog)
    assert not tasks.dropped and a.journal_failures == 0
    _through(a, tctx, 3)  # and on as before
    wait_until(lambda: _rows(db_path) == (4, 4), what="a later flow")


def test_writes_still_refused_as_mitmproxy_stops_are_dropped_with_one_line(
    addon: tuple[Any, Any],
    locked: sqlite3.Connection,
    db_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    a, tctx = addon
    with caplog.at_level("WARNING", logger="engram.addon"):
        _through(a, tctx, 1)
        _through(a, tctx, 2)
        tasks = a._writes.tasks
        wait_until(lambda: tasks.held and tasks.held[0].failures >= 1, what="a retry")
        a.done()  # mitmproxy stops
    lines = [r.getMessage() for r in caplog.records]
    [dropped] = [line for line in lines if "dropping" in line]
    assert "locked" in dropped  # one line for the two rows and the logs
    assert "journal_exchange" in dropped and "log_injections" in dropped
    [summary] = [line for line in lines if "could not be journaled" in line]
    assert "2 exchanges" in summary
    assert not a._writes.thread.is_alive()
    locked.execute("ROLLBACK")
    assert _rows(db_path) == (0, 0)  # nothing written after the stop either
