"""A kill -9 right after the agent has its answer loses no exchange (issue 14, minor), and
duplicates none.

Each exchange is safe before the response's last bytes are released: spooled to RAM
(engram/sources/capture_spool.py) and journaled by the writer right after, or, without
a spool, journaled first. A proxy killed before its writer committed leaves the spool,
and the next proxy on the same database journals it when it starts, under the keys the
exchanges were given at capture (exactly once). Before the writer waited for the last
bytes, the capture queue was still being written ~10-200 ms after the streams completed
and a kill -9 in that window lost it (49/50 in the red-team run).
"""

from __future__ import annotations

import signal
import sqlite3
import stat
import subprocess
import threading
from pathlib import Path

import anthropic
import httpx2

from engram.sources.capture_spool import spool_dir
from tests.support.llm_stub import LLMStub
from tests.support.mitmweb import free_port
from tests.support.proxied import engram_proxy
from tests.support.wait import wait_until

FAKE_KEY = "sk-ant-api03-Dk3wE8rT2yU6iO0pA3sD7fG1hJ4kL8zX2cV5bN9mQ3wE6rT0yU4iO7pA1sD5fG8hJ2kL6zX"
STREAMS = 24


def _start(db: Path, upstream: str) -> tuple[subprocess.Popen[bytes], anthropic.Anthropic]:
    port = free_port()
    proc = engram_proxy(port, upstream, db, "--analyzer", "none", "--no-inject")
    client = anthropic.Anthropic(
        base_url=f"http://127.0.0.1:{port}",
        api_key=FAKE_KEY,
        max_retries=0,
        http_client=httpx2.Client(trust_env=False, timeout=30),
    )

    def ready() -> bool:
        try:
            client.models.list()
            return True
        except anthropic.APIConnectionError:
            return False

    wait_until(ready, timeout=60, what="engram proxy to listen")
    return proc, client


def _streams(client: anthropic.Anthropic) -> None:
    """STREAMS streamed answers at once."""
    errors: list[BaseException] = []

    def one(n: int) -> None:
        try:
            with client.messages.stream(
                model="claude-haiku-4-5",
                max_tokens=20,
                messages=[{"role": "user", "content": f"remember item {n}"}],
            ) as s:
                assert s.get_final_message().stop_reason == "end_turn"
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(STREAMS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []


def _kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert proc.stderr is not None
    proc.stderr.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    assert proc.wait(30) == 0
    assert proc.stderr is not None
    proc.stderr.close()


def _restart(db: Path, upstream: str) -> None:
    """Start a proxy on `db` again, wait until it has journaled every exchange (from the
    spool a killed one left), and stop it cleanly."""
    proc, _client = _start(db, upstream)
    try:
        wait_until(lambda: _rows(db) >= STREAMS, timeout=30, what="the spool recovered")
    finally:
        _stop(proc)


def _rows(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT count(*) FROM exchanges").fetchone()[0])
    finally:
        conn.close()


def test_kill_9_after_streams_complete_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    with LLMStub() as stub:
        proc, client = _start(db, stub.url)
        try:
            _streams(client)
        finally:
            _kill(proc)  # at once, as the streams complete
        # What the writer had not committed is in the spool: the next proxy journals it,
        # and what it had committed is not journaled twice.
        _restart(db, stub.url)
    assert _rows(db) == STREAMS


def test_a_locked_journal_neither_delays_answers_nor_loses_them(tmp_path: Path) -> None:
    """The database is locked by another process for the whole burst: the answers arrive
    (spooled; without a spool each waited up to `durable_wait_s`, 2 s, and a kill -9
    then lost them all), and the exchanges, never committed before the kill -9, are
    journaled by the next proxy."""
    db = tmp_path / "e.db"
    directory = spool_dir(db)
    assert directory is not None, "no RAM-backed place for a spool on this machine"
    with LLMStub() as stub:
        proc, client = _start(db, stub.url)
        lock = sqlite3.connect(db, timeout=0, isolation_level=None)
        try:
            lock.execute("BEGIN IMMEDIATE")
            _streams(client)
            spooled = list(directory.glob("proxy-*.spool"))
            assert len(spooled) == 1 and spooled[0].stat().st_size > 0
            assert stat.S_IMODE(spooled[0].stat().st_mode) == 0o600
            assert stat.S_IMODE(directory.stat().st_mode) == 0o700
            assert FAKE_KEY.encode() not in spooled[0].read_bytes()  # credentials stay out
        finally:
            _kill(proc)
            lock.execute("ROLLBACK")
            lock.close()
        assert _rows(db) == 0
        _restart(db, stub.url)
    assert _rows(db) == STREAMS
    assert not directory.exists()  # a clean stop leaves nothing behind
