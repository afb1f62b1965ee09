"""The watcher as a service: SIGKILL at any point loses and duplicates nothing; SIGTERM
stops cleanly with exit 0."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from tests.support.llm_stub import LLMStub
from tests.support.mitmweb import Mitmweb
from tests.support.wait import wait_until

ENGRAM = [sys.executable, "-m", "engram"]


def send_conversations(stub: LLMStub, mitm: Mitmweb, conversations: int, turns: int) -> None:
    """Agents repeat the whole history on every request; turns of different
    conversations interleave."""
    s = requests.Session()
    s.trust_env = False
    histories: dict[int, list[dict]] = {c: [] for c in range(conversations)}
    for t in range(turns):
        for c in range(conversations):
            history = histories[c]
            history.append({"role": "user", "content": f"conversation {c} turn {t}"})
            r = s.post(
                stub.url + "/v1/messages?beta=true",
                proxies=mitm.proxies(),
                timeout=30,
                headers={"X-Claude-Code-Session-Id": f"conv-{c}"},
                json={
                    "model": "claude-haiku-4-5",
                    "max_tokens": 32,
                    "system": "Primary working directory: /srv/app",
                    "messages": history,
                },
            )
            assert r.status_code == 200
            history.append({"role": "assistant", "content": r.json()["content"]})


def start_watcher(mitm: Mitmweb, db: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *ENGRAM,
            "mitmproxy",
            "--url",
            mitm.url,
            "--interval",
            "0.2",
            "--analyzer",
            "none",
            "--quiet",
        ],
        env={**os.environ, "ENGRAM_DB": str(db), "ENGRAM_MITMWEB_TOKEN": mitm.password},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def last_poll(db: Path) -> dict:
    """What the daemon recorded about its last poll ({} before the first one)."""
    if not db.exists():
        return {}
    conn = sqlite3.connect(db)
    try:
        row = conn.execute("SELECT value FROM state WHERE key = 'watcher:last_poll'").fetchone()
    except sqlite3.OperationalError:  # the schema is not there yet
        return {}
    finally:
        conn.close()
    return json.loads(row[0]) if row else {}


def exchange_count(db: Path) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT count(*) FROM exchanges").fetchone()[0])
    except sqlite3.Error:  # the schema is not there yet
        return 0
    finally:
        conn.close()


def user_turns(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    out = [
        t["text"]
        for (turns,) in conn.execute("SELECT turns FROM exchanges ORDER BY id")
        for t in json.loads(turns)
        if t["role"] == "user"
    ]
    conn.close()
    return out


CONVERSATIONS, TURNS = 8, 12  # 96 exchanges


def test_sigkill_at_several_points_in_a_long_run(tmp_path: Path, mitm: Mitmweb) -> None:
    db = tmp_path / "engram.db"
    rng = random.Random(4)
    with LLMStub() as stub:
        sender = threading.Thread(
            target=send_conversations, args=(stub, mitm, CONVERSATIONS, TURNS)
        )
        sender.start()
        kills = 0
        total = CONVERSATIONS * TURNS
        # Three kills at random points of progress (not of wall-clock time: on a loaded
        # machine the watcher may need seconds just to start), before the run is done.
        while kills < 3 and exchange_count(db) < total - 10:
            watcher = start_watcher(mitm, db)
            target = min(exchange_count(db) + rng.randrange(5, 25), total - 5)
            wait_until(
                lambda t=target, w=watcher: w.poll() is not None or exchange_count(db) >= t,
                timeout=90,
                what="watcher progress",
            )
            watcher.send_signal(signal.SIGKILL)
            watcher.wait(10)
            kills += 1
        sender.join(120)
        assert not sender.is_alive()
        assert kills >= 3
        # Restart and let it drain (a kill may leave flows for a later poll to prune).
        s = requests.Session()
        s.trust_env = False
        auth = {"Authorization": f"Bearer {mitm.password}"}
        for _ in range(3):
            subprocess.run(
                [
                    *ENGRAM,
                    "mitmproxy",
                    "--url",
                    mitm.url,
                    "--once",
                    "--analyzer",
                    "none",
                    "--quiet",
                ],
                check=True,
                timeout=120,
                env={**os.environ, "ENGRAM_DB": str(db), "ENGRAM_MITMWEB_TOKEN": mitm.password},
            )
            left = s.get(mitm.url + "/flows", timeout=10, headers=auth).json()
            if not left and exchange_count(db) == total:
                break
    conn = sqlite3.connect(db)
    count, distinct = conn.execute(
        "SELECT count(*), count(DISTINCT source_key) FROM exchanges"
    ).fetchone()
    conn.close()
    assert count == distinct == total
    said = user_turns(db)
    expected = [f"conversation {c} turn {t}" for t in range(TURNS) for c in range(CONVERSATIONS)]
    assert sorted(said) == sorted(expected)  # each user turn journaled exactly once
    assert left == []  # every captured flow was pruned, even those a kill interrupted


def test_sigterm_stops_cleanly_with_exit_0(tmp_path: Path, mitm: Mitmweb) -> None:
    log = tmp_path / "watcher.log"
    with log.open("wb") as out_file:
        proc = subprocess.Popen(
            [*ENGRAM, "mitmproxy", "--url", mitm.url, "--interval", "0.2", "--analyzer", "none"],
            env={
                **os.environ,
                "ENGRAM_DB": str(tmp_path / "e.db"),
                "ENGRAM_MITMWEB_TOKEN": mitm.password,
            },
            stdout=out_file,
            stderr=subprocess.PIPE,
        )
        # Inside the scheduler, polling: it has recorded a poll (start-up can be slow).
        wait_until(lambda: last_poll(tmp_path / "e.db").get("ok"), timeout=60, what="a poll")
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err.decode()
        assert time.monotonic() - started < 5
        assert b"stopped cleanly" in log.read_bytes()


def test_mitmweb_down_at_start_then_up(tmp_path: Path) -> None:
    """The daemon does not exit when mitmweb is missing; it captures once mitmweb is up."""
    from tests.support.mitmweb import free_port

    web_port, proxy_port = free_port(), free_port()
    mitm = Mitmweb(web_port=web_port, proxy_port=proxy_port)
    db = tmp_path / "e.db"
    watcher = start_watcher(mitm, db)
    try:
        # The daemon has tried and failed (it records each poll), and is still running.
        wait_until(lambda: last_poll(db).get("ok") is False, timeout=60, what="a failed poll")
        assert watcher.poll() is None
        with LLMStub() as stub:
            mitm.start()
            send_conversations(stub, mitm, 1, 2)
            # Its backoff doubles while mitmweb is down (capped at 60 s): allow a full cap.
            wait_until(
                lambda: db.exists() and len(user_turns(db)) == 2,
                timeout=90,
                interval=0.2,
                what="both turns journaled",
            )
    finally:
        watcher.send_signal(signal.SIGTERM)
        _, err = watcher.communicate(timeout=15)
        mitm.close()
    assert watcher.returncode == 0, err.decode()
