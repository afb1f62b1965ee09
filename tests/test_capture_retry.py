"""A failed journal write is retried by the proxy's writer itself (engram/sources/
capture_writer.py), on a real SQLite file: a database locked past its busy timeout is
journaled once it is free, without a restart, exactly once, and the spool empties; an
exchange the journal refuses for good is quarantined next to the spool while the others
commit. The real proxy's versions, with a kill -9, are in tests/test_proxy_durability.py.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from engram.journaling import CapturePolicy
from engram.sources.capture_spool import QUARANTINE, Spool, decode, new_key, quarantined
from engram.sources.capture_writer import CaptureWriter, journal_capture
from engram.sources.proxy import ProxyStats
from engram.store.db import Store
from engram.wire.model import RawRequest, RawResponse
from tests.support.expect import engram_warnings
from tests.support.wait import wait_until

POISON = "claude-poison-1"


def _item(n: int, model: str = "claude-haiku-4-5") -> Any:
    body = {
        "model": model,
        "max_tokens": 20,
        "messages": [{"role": "user", "content": f"remember item {n} of the retry test"}],
    }
    raw = RawRequest(
        headers=[("content-type", "application/json")],
        body=json.dumps(body).encode(),
        timestamp_start=1700000000.0 + n,
        timestamp_end=1700000001.0 + n,
        host="api.anthropic.com",
        path="/v1/messages",
    )
    reply = {
        "id": f"msg_{n}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": f"noted {n}"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 10, "output_tokens": 3},
    }
    response = RawResponse(
        headers=[("content-type", "application/json")],
        body=json.dumps(reply).encode(),
        timestamp_start=raw.timestamp_start,
        timestamp_end=raw.timestamp_end,
        status_code=200,
    )
    return raw, response, None


@pytest.fixture
def spool_home(tmp_path: Path) -> Path:
    d = tmp_path / "spool"
    d.mkdir(mode=0o700)
    return d


@pytest.fixture(params=["spool", "memory"])
def writer(
    request: pytest.FixtureRequest, db_path: Path, spool_home: Path
) -> Iterator[tuple[CaptureWriter, Store]]:
    """A writer on a real database, with a spool, or without one (macOS: held in memory)."""
    store = Store(db_path, busy_timeout_ms=50)  # a lock outlasts it at once
    store.ensure()
    home = spool_home if request.param == "spool" else None
    w = CaptureWriter(journal_capture(store, None, CapturePolicy()), 1000, ProxyStats(), home)
    try:
        yield w, store
    finally:
        w.close()
        store.close()


def _keys(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return [r[0] for r in conn.execute("SELECT source_key FROM exchanges")]
    finally:
        conn.close()


def _spool_size(w: CaptureWriter) -> int:
    return w.spool.path.stat().st_size if w.spool is not None else sum(e.size for e in w._backlog)


def test_a_locked_database_is_journaled_once_free_without_a_restart(
    writer: tuple[CaptureWriter, Store], db_path: Path
) -> None:
    w, _ = writer
    lock = sqlite3.connect(db_path, timeout=0, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # another process's write transaction
    try:
        for n in range(30):
            w.put_nowait(_item(n))
        wait_until(lambda: w._failing_since is not None, what="a failed commit")
        # Retries while the lock is held: the exchanges stay held and spooled.
        first = w._backoff.until
        wait_until(lambda: w._backoff.until > first, what="a retry that failed too")
        assert _keys(db_path) == [] and _spool_size(w) > 0
        for n in range(30, 40):  # more arrive while it is locked
            w.put_nowait(_item(n))
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    wait_until(lambda: len(_keys(db_path)) == 40, timeout=20, what="the retry to commit")
    wait_until(lambda: _spool_size(w) == 0, what="the spool to empty")
    keys = _keys(db_path)
    assert len(set(keys)) == 40
    assert w.stats.captured == 40 and w.stats.capture_failed == 0
    assert w._backlog == [] and w._failing_since is None


def test_a_refused_exchange_is_quarantined_and_the_rest_commit(
    writer: tuple[CaptureWriter, Store],
    db_path: Path,
    spool_home: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    w, _ = writer
    conn = sqlite3.connect(db_path)
    conn.execute(  # a constraint only this exchange violates, in the real database
        "CREATE TRIGGER refuse BEFORE INSERT ON exchanges WHEN NEW.model = ? "
        "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END".replace("?", f"'{POISON}'")
    )
    conn.commit()
    conn.close()
    items = [_item(n) for n in range(9)]
    items.insert(4, _item(99, POISON))
    with caplog.at_level("WARNING", logger="engram.proxy"):
        for item in items:
            w.put_nowait(item)
        wait_until(lambda: w.stats.capture_failed == 1, timeout=20, what="the quarantine")
    assert len(_keys(db_path)) == 9  # the others committed, and at once
    wait_until(lambda: _spool_size(w) == 0, what="the spool to empty")
    [line] = [r.getMessage() for r in caplog.records if "cannot be journaled" in r.getMessage()]
    assert "3 attempts" in line and "refused by the test" in line
    if w.spool is None:  # nowhere to keep it: lost, and said so
        assert "cannot be kept: lost" in line
        return
    [(key, (raw, response, _))] = list(decode((spool_home / QUARANTINE).read_bytes()))
    assert POISON.encode() in (raw.body or b"") and response is not None
    assert QUARANTINE in line
    assert key not in _keys(db_path)
    assert (spool_home / QUARANTINE).stat().st_mode & 0o777 == 0o600
    w.put_nowait(_item(100))  # the writer goes on as before
    wait_until(lambda: len(_keys(db_path)) == 10, what="a later exchange")


def test_status_counts_the_quarantine(
    cli: Any, db_path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from engram.sources.capture_spool import quarantine, spool_dir

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    (tmp_path / "run").mkdir(mode=0o700)
    assert cli.json("status")["capture_quarantine"] is None
    directory = spool_dir(db_path)
    assert directory is not None
    for n in range(2):
        assert quarantine(directory, new_key(), _item(n), f"IntegrityError: refused {n}")
    info = quarantined(db_path)
    assert info == {
        "path": str(directory / QUARANTINE),
        "exchanges": 2,
        "last_reason": "IntegrityError: refused 1",
    }
    assert cli.json("status")["capture_quarantine"] == info
    assert "2 captured exchanges the journal refused" in cli("status").stdout


def test_a_dead_spool_is_adopted_and_retried_until_the_database_is_free(
    db_path: Path, spool_home: Path
) -> None:
    """A proxy killed with exchanges spooled; the next one starts while the database is
    locked: it journals them once the lock is gone, not at its own next start."""
    dead = Spool(spool_home)
    keys = [new_key() for _ in range(5)]
    for n, key in enumerate(keys):
        assert dead.append(key, _item(n))
    import os

    os.close(dead._fd)  # killed
    store = Store(db_path, busy_timeout_ms=50)
    store.ensure()
    lock = sqlite3.connect(db_path, timeout=0, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    w = CaptureWriter(journal_capture(store, None, CapturePolicy()), 100, ProxyStats(), spool_home)
    try:
        wait_until(lambda: w._failing_since is not None, what="a failed commit")
        assert dead.path.exists()
        lock.execute("ROLLBACK")
        wait_until(lambda: not dead.path.exists(), timeout=20, what="the dead spool journaled")
        assert sorted(_keys(db_path)) == sorted(keys)
    finally:
        lock.close()
        w.close()
        store.close()


def _spooled_bytes(home: Path) -> int:
    return sum(p.stat().st_size for p in home.glob("proxy-*.spool"))


def test_captures_cancelled_while_waiting_for_queue_room_are_journaled_now(
    db_path: Path, spool_home: Path
) -> None:
    """Requests cancelled (the agent hung up) while their exchanges wait for room in a
    full queue: the cancellation goes through at once, and every exchange is journaled
    by this writer and the spool empties, without a restart. The loop's executor has
    two threads, as a busy proxy's is taken: the wait used to be a call queued there,
    and a cancellation dropped the ones not started (spooled, unjournaled until the
    next proxy)."""
    store = Store(db_path)
    store.ensure()
    w = CaptureWriter(journal_capture(store, None, CapturePolicy()), 1, ProxyStats(), spool_home)
    busy, release = threading.Event(), threading.Event()

    def occupy_writer() -> None:
        busy.set()
        release.wait(60)

    async def requests() -> None:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(2))
        waiting = [asyncio.create_task(w.put_durable(_item(n), 2.0)) for n in range(1, 6)]
        for _ in range(1000):  # until each has found the queue full
            if w.stats.capture_waits == len(waiting):
                break
            await asyncio.sleep(0)
        assert w.stats.capture_waits == len(waiting)
        for task in waiting:
            task.cancel()
        done = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), 30)
        assert all(isinstance(d, asyncio.CancelledError) for d in done)
        # A capture from a handler already cancelled does not block the loop either.
        w.put_nowait(_item(6))
        release.set()

    try:
        w.defer(occupy_writer)
        wait_until(busy.is_set, what="the writer busy")
        w.put_nowait(_item(0))  # the queue (one place) is full
        asyncio.run(requests())
        wait_until(lambda: len(_keys(db_path)) == 7, what="every exchange journaled")
        wait_until(lambda: _spooled_bytes(spool_home) == 0, what="the spool to empty")
        assert w.spool is not None and w.spool.pending == 0
        assert w.stats.captured == 7 and len(set(_keys(db_path))) == 7
    finally:
        release.set()
        w.close()
        store.close()


def _memory(store: Store) -> str:
    from engram.store import memories

    with store.write() as session:
        return memories.add(session, "The staging database is Postgres 16").memory.id


def _injections(db: Path, memory_id: str) -> tuple[int, int]:
    conn = sqlite3.connect(db)
    try:
        [(uses,)] = conn.execute("SELECT use_count FROM memories WHERE id = ?", (memory_id,))
        [(events,)] = conn.execute("SELECT count(*) FROM events WHERE action = 'inject'")
        return uses, events
    finally:
        conn.close()


def _log_injection(writer: CaptureWriter, store: Store, memory_id: str) -> None:
    """What the proxy's recall step does after a request that got memory: its injection
    log goes to the writer as a deferred task."""
    from engram.recall.gate import Candidate
    from engram.recall.service import Recaller, RecallResult
    from engram.sources.recall_step import RecallStep

    step = RecallStep(Recaller(store, embedder=None), None, writer.defer)
    hit = Candidate(memory_id, "The staging database is Postgres 16", "fact", "global", 0.9, True)
    result = RecallResult(True, "test", [hit], query="which staging database")
    step._log(result, "conversation-1")


def test_an_injection_log_waits_out_a_locked_database(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A deferred write (the injection log) that meets a database locked past its busy
    timeout is retried, and written once when the lock goes; a capture queued behind it
    is journaled too."""
    store = Store(db_path, busy_timeout_ms=50)
    store.ensure()
    memory_id = _memory(store)
    w = CaptureWriter(journal_capture(store, None, CapturePolicy()), 100, ProxyStats())
    lock = sqlite3.connect(db_path, timeout=0, isolation_level=None)
    try:
        with caplog.at_level("DEBUG", logger="engram.proxy"):
            lock.execute("BEGIN IMMEDIATE")
            _log_injection(w, store, memory_id)
            wait_until(lambda: w.tasks.held and w.tasks.held[0].failures >= 2, what="retries")
            w.put_nowait(_item(1))
            lock.execute("ROLLBACK")
            wait_until(lambda: _injections(db_path, memory_id) == (1, 1), what="the log")
            wait_until(lambda: len(_keys(db_path)) == 1, what="the capture")
        assert w.tasks.held == []
        assert not engram_warnings(caplog)
    finally:
        lock.close()
        w.close()
        store.close()


def test_an_injection_log_is_dropped_after_its_bound_with_one_line(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A database that stays locked: the deferred write is dropped after its attempts,
    with one warning; captures keep being taken meanwhile and are journaled once the
    lock goes, and later injection logs are written."""
    store = Store(db_path, busy_timeout_ms=50)
    store.ensure()
    memory_id = _memory(store)
    w = CaptureWriter(
        journal_capture(store, None, CapturePolicy()), 100, ProxyStats(), task_attempts=3
    )
    lock = sqlite3.connect(db_path, timeout=0, isolation_level=None)
    try:
        with caplog.at_level("WARNING", logger="engram.proxy"):
            lock.execute("BEGIN IMMEDIATE")
            _log_injection(w, store, memory_id)
            for n in range(3):
                w.put_nowait(_item(n))
            wait_until(
                lambda: any("dropping 1 deferred" in r.getMessage() for r in caplog.records),
                what="the drop",
            )
            lock.execute("ROLLBACK")
            wait_until(lambda: len(_keys(db_path)) == 3, timeout=20, what="the captures")
        [line] = [r.getMessage() for r in caplog.records if "deferred" in r.getMessage()]
        assert "log_injections" in line and "3 attempts" in line and "locked" in line
        assert _injections(db_path, memory_id) == (0, 0) and w.tasks.held == []
        _log_injection(w, store, memory_id)
        wait_until(lambda: _injections(db_path, memory_id) == (1, 1), what="a later log")
    finally:
        lock.close()
        w.close()
        store.close()


def test_a_worker_deferring_onto_a_full_queue_returns_at_once_and_its_task_runs(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A recall worker logs its injection (a deferred task) while the writer is busy and
    its queue full: the worker returns at once, its request keeping what is left of its
    recall budget (it used to wait for room), and the log is written once the writer is
    free. Past the bound a task is dropped, with one warning for the whole stretch."""
    store = Store(db_path)
    store.ensure()
    memory_id = _memory(store)
    w = CaptureWriter(journal_capture(store, None, CapturePolicy()), 1, ProxyStats(), task_bound=3)
    busy, release = threading.Event(), threading.Event()
    ran: list[int] = []

    def occupy_writer() -> None:
        busy.set()
        release.wait(60)

    def note(n: int) -> Any:
        def task() -> None:
            ran.append(n)

        return task

    def recall_worker() -> None:
        _log_injection(w, store, memory_id)  # the real recall step's deferred log
        for n in range(4):  # two more fit under the bound; the last two are dropped
            w.defer(note(n))

    try:
        with caplog.at_level("WARNING", logger="engram.proxy"):
            w.defer(occupy_writer)
            wait_until(busy.is_set, what="the writer busy")
            w.put_nowait(_item(0))
            assert w.queue.full()
            worker = threading.Thread(target=recall_worker, name="recall-worker")
            worker.start()
            # The writer stays busy and the queue full until `release`: a worker that
            # waited for room would still be waiting.
            wait_until(lambda: not worker.is_alive(), what="the worker to return")
            assert w.queue.full() and not release.is_set() and ran == []
            release.set()
            wait_until(lambda: _injections(db_path, memory_id) == (1, 1), what="the log")
            wait_until(lambda: ran == [0, 1], what="the tasks under the bound")
            wait_until(lambda: len(_keys(db_path)) == 1, what="the capture")
        [line] = [r.getMessage() for r in caplog.records]
        assert "dropping new ones (task)" in line
        assert w.tasks.dropped == {"task": 2}
        w.defer(note(9))  # the writer caught up: tasks are taken again
        wait_until(lambda: ran == [0, 1, 9], what="a later task")
    finally:
        release.set()
        w.close()
        store.close()


def test_a_refused_deferred_write_logs_one_line_without_the_statements_text(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A write the database refuses for good: one error line with SQLite's own error;
    SQLAlchemy's text (the statement and its parameters, conversation text) stays out of
    the log above debug level, traceback included."""
    from sqlalchemy import text

    store = Store(db_path)
    store.ensure()
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE probe (x TEXT NOT NULL CHECK (length(x) < 5))")
    conn.commit()
    conn.close()
    words = "the user said the staging password rotates every monday"

    def refused() -> None:
        with store.write() as session:
            session.execute(text("INSERT INTO probe (x) VALUES (:x)"), {"x": words})

    w = CaptureWriter(journal_capture(store, None, CapturePolicy()), 100, ProxyStats())
    try:
        with caplog.at_level("INFO", logger="engram.proxy"):
            w.defer(refused)
            wait_until(lambda: any("refused" in r.getMessage() for r in caplog.records))
        [record] = [r for r in caplog.records if "refused" in r.getMessage()]
        assert record.levelname == "ERROR" and "CHECK constraint failed" in record.getMessage()
        assert record.exc_info is None
        assert not any(words in r.getMessage() or r.exc_info for r in caplog.records)
    finally:
        w.close()
        store.close()
