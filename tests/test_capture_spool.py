"""The capture spool (engram/sources/capture_spool.py): records survive as written, a torn
tail is dropped, a live proxy's file is left alone, and recovery journals each exchange
once, under its own key (the kill -9 paths run in tests/test_proxy_durability.py)."""

from __future__ import annotations

import fcntl
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from engram.sources.capture_spool import Spool, adopt_dead, decode, encode, new_key
from engram.wire.model import RawRequest, RawResponse
from tests.support.wait import wait_until


def _item(n: int) -> Any:
    raw = RawRequest(
        headers=[("content-type", "application/json"), ("x-api-key", "sk-ant-api03-" + "k" * 40)],
        body=f'{{"n": {n}, "text": "caf\u00e9 \\u0000"}}'.encode(),
        timestamp_start=1700000000.25 + n,
        timestamp_end=1700000001.5 + n,
        host="api.anthropic.com",
        path="/v1/messages?beta=true",
        recall={"outcome": "injected", "memories": [{"id": "m1", "score": 0.91}]},
    )
    response = RawResponse(
        headers=[("content-type", "text/event-stream")],
        body=b"event: message_stop\ndata: {}\n\n" * (n + 1),
        timestamp_start=raw.timestamp_start,
        timestamp_end=raw.timestamp_end,
        status_code=200,
    )
    return raw, (response if n % 2 == 0 else None), (None if n % 2 == 0 else "upstream reset")


def test_records_round_trip_without_credentials() -> None:
    items = [(new_key(), _item(n)) for n in range(4)]
    data = b"".join(b"".join(encode(k, i)) for k, i in items)
    back = list(decode(data))
    assert [k for k, _ in back] == [k for k, _ in items]
    for (_, (raw, resp, err)), (_, (raw2, resp2, err2)) in zip(items, back, strict=True):
        assert raw2.body == raw.body and raw2.recall == raw.recall and err2 == err
        assert raw2.headers == [h for h in raw.headers if h[0] != "x-api-key"]
        assert (raw2.timestamp_start, raw2.path, raw2.host) == (
            raw.timestamp_start,
            raw.path,
            raw.host,
        )
        assert (resp2 is None) == (resp is None)
        if resp is not None and resp2 is not None:
            assert (resp2.body, resp2.status_code, resp2.headers) == (
                resp.body,
                resp.status_code,
                resp.headers,
            )
    assert b"sk-ant-api03" not in data


def test_a_torn_tail_is_dropped() -> None:
    records = [b"".join(encode(new_key(), _item(n))) for n in range(3)]
    data = b"".join(records)
    assert len(list(decode(data[:-5]))) == 2
    corrupt = bytearray(data)
    corrupt[len(records[0]) + 30] ^= 0xFF  # a bad byte inside the second record
    assert len(list(decode(bytes(corrupt)))) == 1


def test_recovery_journals_dead_spools_once_and_leaves_live_ones(tmp_path: Path) -> None:
    journal: dict[str, Any] = {}

    def capture(items: list[tuple[str, Any]]) -> None:
        for key, item in items:
            journal.setdefault(key, item)  # journaling is idempotent on the key

    def recover() -> int:
        done = 0
        for spool, items in adopt_dead(tmp_path):
            capture(items)
            spool.journaled(len(items))  # settled: the dead file is removed
            done += len(items)
        return done

    live = Spool(tmp_path)
    assert live.append(new_key(), _item(0))
    assert stat.S_IMODE(os.stat(live.path).st_mode) == 0o600
    dead = Spool(tmp_path)
    keys = [new_key() for _ in range(3)]
    for n, key in enumerate(keys):
        assert dead.append(key, _item(n))
    capture([(keys[0], _item(0))])  # committed before the crash, still in the file
    os.close(dead._fd)  # the process died: its lock is gone, its file stays
    assert recover() == 3
    assert sorted(journal) == sorted(keys)
    assert not dead.path.exists() and live.path.exists()
    assert recover() == 0  # a live proxy's spool is its own
    live.journaled(1)
    assert live.path.stat().st_size == 0  # nothing pending: emptied
    live.close()
    assert not tmp_path.exists() or not list(tmp_path.iterdir())


def test_an_adopted_spool_stays_until_settled_and_is_adopted_once(tmp_path: Path) -> None:
    """A dead proxy's spool this proxy adopted is locked by it (no second proxy takes
    it), stays until every exchange in it is settled, and is adopted again if this
    proxy dies first."""
    dead = Spool(tmp_path)
    for n in range(2):
        assert dead.append(new_key(), _item(n))
    os.close(dead._fd)
    [(spool, items)] = list(adopt_dead(tmp_path))
    assert len(items) == 2 and spool.adopted
    assert list(adopt_dead(tmp_path)) == []  # ours now
    assert not spool.append(new_key(), _item(3))  # never grown
    spool.journaled(1)
    assert spool.path.exists()
    spool.close()  # this proxy stops (or dies) with one unsettled: the next one adopts it
    [(again, items2)] = list(adopt_dead(tmp_path))
    assert [k for k, _ in items2] == [k for k, _ in items]
    again.journaled(2)
    assert not again.path.exists()


# -- two proxies starting at once -----------------------------------------------------

_ADOPT = """
import json, sys
from pathlib import Path
from engram.sources.capture_spool import adopt_dead
print(json.dumps([[str(s.path), len(items)] for s, items in adopt_dead(Path(sys.argv[1]))]))
"""


def _adopt_in_another_process(directory: Path) -> list[list[Any]]:
    """What a second proxy starting now would adopt (its own process, its own locks)."""
    done = subprocess.run(
        [sys.executable, "-c", _ADOPT, str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


def test_a_spool_being_created_is_never_adopted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy paused between creating its spool and locking it (the real flock, held
    back) while another process adopts dead spools: the other takes nothing, and the
    paused proxy ends with a locked spool under its name that a kill -9 would leave for
    the next proxy (it used to be taken as a dead proxy's, and removed)."""
    at_window, go = threading.Event(), threading.Event()
    real_flock = fcntl.flock
    created: list[Spool] = []

    def held_back_flock(fd: int, op: int) -> None:
        if threading.current_thread().name == "creator" and not at_window.is_set():
            at_window.set()
            go.wait(60)
        real_flock(fd, op)

    monkeypatch.setattr(fcntl, "flock", held_back_flock)
    creator = threading.Thread(target=lambda: created.append(Spool(tmp_path)), name="creator")
    creator.start()
    try:
        wait_until(at_window.is_set, what="the creator between create and lock")
        assert list(tmp_path.iterdir()), "the file exists, not locked yet"
        assert _adopt_in_another_process(tmp_path) == []
    finally:
        go.set()
        creator.join(60)
    [spool] = created
    assert spool.append(new_key(), _item(0))
    assert os.fstat(spool._fd).st_ino == spool.path.stat().st_ino  # its file, named
    assert spool.path.stat().st_size > 0
    assert _adopt_in_another_process(tmp_path) == []  # alive: its own
    assert [p.name for p in tmp_path.iterdir()] == [spool.path.name]
    spool.journaled(1)
    spool.close()


_DIE_HOLDING = """
import os, sys, threading
from pathlib import Path
from engram.sources import capture_spool
from tests.test_capture_spool import _item

directory, marker, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
if mode == "records":  # a proxy with three exchanges spooled
    spool = capture_spool.Spool(directory)
    for n in range(3):
        assert spool.append(f"proxy:dead-{n}", _item(n))
else:  # a proxy paused between locking its new file and renaming it
    def paused(src, dst):
        marker.write_text("at rename")
        threading.Event().wait()
    os.rename = paused
    capture_spool.Spool(directory)
marker.write_text("ready")
threading.Event().wait()
"""


def test_dead_spools_are_adopted_and_half_made_ones_removed(tmp_path: Path) -> None:
    """Two proxies killed -9: one with exchanges spooled, one between creating its
    spool and naming it. Adoption leaves the half-made file alone while its creator
    lives, then removes it, and journals the other's exchanges."""
    directory = tmp_path / "spool"
    directory.mkdir(mode=0o700)
    procs = []
    for mode in ("records", "creating"):
        marker = tmp_path / f"{mode}.marker"
        proc = subprocess.Popen(
            [sys.executable, "-c", _DIE_HOLDING, str(directory), str(marker), mode],
            cwd=Path(__file__).parent.parent,
            stdin=subprocess.DEVNULL,
        )
        procs.append(proc)
        wait_until(marker.exists, timeout=30, what=f"the {mode} proxy")
    try:
        [temp] = directory.glob("creating-*.tmp")
        assert _adopt_in_another_process(directory) == []  # both alive
        assert temp.exists()
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(30)
    [(spool, items)] = list(adopt_dead(directory))
    assert [k for k, _ in items] == [f"proxy:dead-{n}" for n in range(3)]
    assert not temp.exists()
    spool.journaled(3)
    assert list(directory.iterdir()) == []
