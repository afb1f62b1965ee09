"""A full disk under the database: one clear line, backoff, and nothing lost once there is
room again (a red-team run saw a full traceback on every poll, 1,132 lines a minute)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ENGRAM

from tests.support.flows import anthropic_flow
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs (needs root, as on the CI machines)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def write_flows(path: Path, n: int, size: int, *, first: int, append: bool = False) -> None:
    from mitmproxy import io

    with path.open("ab" if append else "wb") as fh:
        writer = io.FlowWriter(fh)
        for i in range(first, first + n):
            body = {
                "model": "claude-haiku-4-5",
                "max_tokens": 10,
                "system": "Primary working directory: /home/dev/shop",
                "messages": [{"role": "user", "content": f"turn {i}: " + "word " * size}],
            }
            reply = {"content": [{"type": "text", "text": f"ok {i}"}], "model": "m"}
            flow = anthropic_flow(body, reply)
            flow.request.timestamp_start = 1_800_000_000 + i
            writer.add(flow)


def fill(directory: Path) -> Path:
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:  # ENOSPC: the disk is full
        pass
    finally:
        os.close(fd)
    return filler


def test_disk_full_is_one_line_then_backoff_and_nothing_is_lost(
    small_disk: Path, tmp_path: Path
) -> None:
    db = small_disk / "e.db"
    env = {**os.environ, "ENGRAM_DB": str(db)}
    flows = tmp_path / "flows.mitm"
    write_flows(flows, 1, 10, first=0)
    proc = subprocess.Popen(
        [
            *ENGRAM,
            "mitmproxy",
            "--flow-file",
            str(flows),
            "--interval",
            "0.1",
            "--analyzer",
            "none",
            "--quiet",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    lines: list[str] = []
    os.set_blocking(proc.stderr.fileno(), False)  # type: ignore[union-attr]

    def read() -> list[str]:
        chunk = proc.stderr.read()  # type: ignore[union-attr]
        if chunk:
            lines.extend(chunk.decode().splitlines())
        return [line for line in lines if "full" in line]

    try:
        wait_until(lambda: exchanges(db) == 1, timeout=60, what="the first flow journaled")
        filler = fill(small_disk)
        write_flows(flows, 5, 40_000, first=1, append=True)  # ~200 KB of turns each
        wait_until(read, timeout=60, what="the disk-full message")
        time.sleep(3)  # time is the subject: 30 poll intervals pass
        read()
        assert len(read()) == 1 and len(lines) <= 2, lines
        assert not any("Traceback" in line for line in lines)
        # Room again: the daemon carries on by itself, and journals each flow once.
        filler.unlink()
        wait_until(lambda: exchanges(db) == 6, timeout=90, what="the rest journaled")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert proc.returncode == 0, lines


def exchanges(db: Path) -> int:
    try:
        conn = sqlite3.connect(db)
        try:
            return int(conn.execute("SELECT count(*) FROM exchanges").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return -1


def test_a_full_disk_at_start_is_one_line_not_a_corrupt_database(
    small_disk: Path, tmp_path: Path
) -> None:
    db = small_disk / "e.db"
    env = {**os.environ, "ENGRAM_DB": str(db)}
    subprocess.run([*ENGRAM, "add", "before the disk filled"], env=env, check=True, timeout=60)
    fill(small_disk)
    done = subprocess.run(
        [*ENGRAM, "mitmproxy", "--once", "--url", "http://127.0.0.1:9", "--analyzer", "none"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: the disk holding") and "is full" in done.stderr
    assert done.stderr.count("\n") == 1 and "not a usable" not in done.stderr
