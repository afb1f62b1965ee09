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

import contextlib
import json
import signal
import sqlite3
import stat
import subprocess
import threading
import time
from pathlib import Path

import anthropic
import httpx2

from engram.sources.capture_spool import spool_dir
from tests.conftest import run_engram
from tests.support.llm_stub import LLMStub
from tests.support.mitmweb import free_port
from tests.support.proxied import engram_proxy
from tests.support.wait import wait_until

FAKE_KEY = "sk-ant-api03-Dk3wE8rT2yU6iO0pA3sD7fG1hJ4kL8zX2cV5bN9mQ3wE6rT0yU4iO7pA1sD5fG8hJ2kL6zX"
STREAMS = 24
POISON = "claude-poison-1"


def _start(
    db: Path, upstream: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], anthropic.Anthropic]:
    port = free_port()
    proc = engram_proxy(port, upstream, db, "--analyzer", "none", "--no-inject", env=env)
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


def _streams(client: anthropic.Anthropic, poison: int | None = None) -> None:
    """STREAMS streamed answers at once (the `poison`th for the model POISON)."""
    errors: list[BaseException] = []

    def one(n: int) -> None:
        try:
            with client.messages.stream(
                model=POISON if n == poison else "claude-haiku-4-5",
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


class _Stderr:
    """A proxy's stderr lines as they come (its warnings), read by a thread."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        self.lines: list[str] = []
        self._pipe = proc.stderr
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._pipe:
            self.lines.append(line.decode(errors="replace"))

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)

    def join(self) -> None:  # the process has exited: EOF
        self._thread.join(30)


def _kill(proc: subprocess.Popen[bytes], stderr: _Stderr | None = None) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    _close(proc, stderr)


def _stop(proc: subprocess.Popen[bytes], stderr: _Stderr | None = None) -> None:
    proc.terminate()
    assert proc.wait(30) == 0
    _close(proc, stderr)


def _close(proc: subprocess.Popen[bytes], stderr: _Stderr | None) -> None:
    if stderr is not None:
        stderr.join()
    assert proc.stderr is not None
    proc.stderr.close()


def _restart(db: Path, upstream: str, expect: int = STREAMS) -> None:
    """Start a proxy on `db` again, wait until it has journaled every exchange (from the
    spool a killed one left), and stop it cleanly."""
    proc, _client = _start(db, upstream)
    try:
        wait_until(lambda: _rows(db) >= expect, timeout=30, what="the spool recovered")
    finally:
        _stop(proc)


def _rows(db: Path) -> int:
    """Exchanges journaled."""
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT count(*) FROM exchanges").fetchone()[0])
    finally:
        conn.close()


def _spool_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("proxy-*.spool"))


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


def test_a_journal_locked_for_a_while_catches_up_without_a_restart(tmp_path: Path) -> None:
    """Another process holds the database's write lock past the proxy's busy timeout
    during a burst: the writer retries, and once the lock is gone the burst is journaled
    exactly once and the spool empties, with the same proxy running. A second burst
    under a second lock is killed -9 after a failed retry: the next proxy journals it,
    and nothing twice."""
    db = tmp_path / "e.db"
    directory = spool_dir(db)
    assert directory is not None, "no RAM-backed place for a spool on this machine"
    env = {"ENGRAM_STORE_BUSY_TIMEOUT_MS": "100"}
    with LLMStub() as stub:
        proc, client = _start(db, stub.url, env)
        stderr = _Stderr(proc)
        lock = sqlite3.connect(db, timeout=0, isolation_level=None)
        try:
            for burst in (1, 2):
                lock.execute("BEGIN IMMEDIATE")
                _streams(client)
                assert _spool_bytes(directory) > 0 and _rows(db) == STREAMS * (burst - 1)
                wait_until(
                    lambda b=burst: stderr.count("cannot journal captured exchanges") == b,
                    what="a failed commit",
                )
                if burst == 2:
                    break
                lock.execute("ROLLBACK")
                wait_until(lambda: _rows(db) == STREAMS, timeout=30, what="the retry's commit")
                wait_until(lambda: _spool_bytes(directory) == 0, what="the spool to empty")
                wait_until(lambda: stderr.count("the journal takes writes again") == 1)
            # The lock holds for a while: the writer's retries of the second burst fail
            # (not visible outside the process; 1 s covers those after 0.1, 0.2 and
            # 0.4 s), then the kill -9.
            time.sleep(1.0)
            assert _spool_bytes(directory) > 0 and _rows(db) == STREAMS
        finally:
            _kill(proc, stderr)
            if lock.in_transaction:
                lock.execute("ROLLBACK")
            lock.close()
        assert _rows(db) == STREAMS
        _restart(db, stub.url, 2 * STREAMS)
    assert _rows(db) == 2 * STREAMS  # each key once: the journal's keys are unique
    assert not directory.exists()


def test_an_exchange_the_journal_refuses_is_quarantined_and_the_rest_journaled(
    tmp_path: Path,
) -> None:
    """A row the database refuses for good (a constraint only it violates): the other
    exchanges are journaled, the spool empties, the refused one is kept in the quarantine
    file with one error line, and `engram status` shows it."""
    db = tmp_path / "e.db"
    directory = spool_dir(db)
    assert directory is not None, "no RAM-backed place for a spool on this machine"
    with LLMStub() as stub:
        proc, client = _start(db, stub.url)
        stderr = _Stderr(proc)
        try:
            conn = sqlite3.connect(db, timeout=10)
            conn.execute(
                f"CREATE TRIGGER refuse BEFORE INSERT ON exchanges WHEN NEW.model = '{POISON}' "
                "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
            conn.commit()
            conn.close()
            _streams(client, poison=7)
            wait_until(lambda: stderr.count("cannot be journaled") == 1, timeout=20)
            assert _rows(db) == STREAMS - 1
            wait_until(lambda: _spool_bytes(directory) == 0, what="the spool to empty")
            status = run_engram("status", "--json", env={"ENGRAM_DB": str(db)})
            assert status.returncode == 0, status.stderr
            refused = json.loads(status.stdout)["capture_quarantine"]
            assert refused["exchanges"] == 1 and "refused by the test" in refused["last_reason"]
        finally:
            _stop(proc, stderr)
            for leftover in directory.glob("*"):
                leftover.unlink()
            with contextlib.suppress(OSError):
                directory.rmdir()
    assert stderr.count("cannot be journaled") == 1
    assert _rows(db) == STREAMS - 1
