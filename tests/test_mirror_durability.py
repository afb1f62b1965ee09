"""The mirror under crashes and volume: SIGKILL of `engram mirror sync` at random points
(with local changes in between) leaves MuninnDB with exactly the local active memories;
so does a crash or a lost answer right after MuninnDB applied a forget or a restore;
a large outbox drains with flat memory."""

from __future__ import annotations

import os
import random
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import ENGRAM, run_engram

from engram.errors import EngramError
from engram.mirror.client import MuninnClient
from engram.mirror.sync import Syncer
from engram.store import memories, outbox
from engram.store.db import Store
from tests.support.muninn_stub import Fault, MuninnStub, assert_mirrored
from tests.support.outbox_load import SCOPES, drain
from tests.support.wait import wait_until


def add_batch(store: Store, start: int, n: int) -> list[str]:
    with store.write() as s:
        return [
            memories.add(
                s, f"fact {i}: keep {i % 13} things in mind", scope=SCOPES[i % 3]
            ).memory.id
            for i in range(start, start + n)
        ]


def churn(store: Store, ids: list[str], rng: random.Random, n: int) -> None:
    """Edits, supersedes, forgets and restores, some of memories probably in flight."""
    with store.write() as s:
        for mid in rng.sample(ids, n):
            status = memories.get(s, mid).status
            tag = rng.randrange(10**9)
            try:
                if status != "active":
                    memories.restore(s, mid)
                    continue
                op = rng.choice(("edit", "forget", "supersede"))
                if op == "edit":
                    memories.edit(s, mid, f"edited {tag}")
                elif op == "forget":
                    memories.forget(s, mid)
                else:
                    ids.append(memories.supersede(s, mid, f"replacement {tag}")[1].id)
            except EngramError:  # e.g. restoring a fact that is active again elsewhere
                pass


def test_sigkill_mid_sync_loses_and_duplicates_nothing(store: Store) -> None:
    rng = random.Random(11)
    ids = add_batch(store, 0, 800)
    with MuninnStub(latency=0.03) as stub:
        env = {
            **os.environ,
            "ENGRAM_DB": str(store.path),
            "ENGRAM_MUNINN_ENABLED": "1",
            "MUNINN_MCP_URL": stub.url,
        }
        kills = 0
        for round_ in range(4):
            proc = subprocess.Popen(
                [*ENGRAM, "mirror", "sync"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            # Kill at a random point *of progress*, not of wall-clock time: on a loaded
            # machine the child may need seconds just to start.
            target = len(stub.memories) + rng.randrange(20, 200)
            wait_until(
                lambda t=target, p=proc: p.poll() is not None or len(stub.memories) >= t,
                timeout=60,
                what="mirror sync progress",
            )
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait(10)
            churn(store, ids, rng, 60)
            ids += add_batch(store, 10_000 * (round_ + 1), 200)
        assert kills >= 3
        assert len(stub.active()) > 0
        stub.latency = 0
        done = run_engram("mirror", "sync", env=env, timeout=120)
        assert done.returncode == 0, done.stderr.decode()
        assert_mirrored(store, stub)
        with store.read() as conn:
            assert outbox.counts(conn)["pending"] == 0 and outbox.counts(conn)["failed"] == 0


class Died(BaseException):
    """The sync process is killed: nothing after this point runs or commits."""


class DiesAfter(MuninnClient):
    """Makes the first `tool` call (MuninnDB applies it), then the process dies."""

    def __init__(self, url: str, tool: str) -> None:
        super().__init__(url, timeout=5)
        self.tool = tool

    def call(self, tool: str, arguments: dict[str, Any], *, timeout: float | None = None) -> Any:
        result = super().call(tool, arguments, timeout=timeout)
        if tool == self.tool:
            raise Died(tool)
        return result


def _change(step: str, *args: str) -> Callable[[Store, str], None]:
    def apply(store: Store, mid: str) -> None:
        with store.write() as s:
            getattr(memories, step)(s, mid, *args)

    return apply


# (the local change the fatal sync pushes, the call whose answer is lost, the change after)
UNDONE = {
    "forgotten, then restored": (_change("forget"), "muninn_forget", _change("restore")),
    "restored, then forgotten": (_change("restore"), "muninn_restore", _change("forget")),
    "edited, then edited back": (
        _change("edit", "use spaces"),
        "muninn_forget",
        _change("edit", "use tabs"),
    ),
}


@pytest.mark.parametrize("how", ["killed", "answer lost"])
@pytest.mark.parametrize("case", list(UNDONE))
def test_a_forget_or_restore_whose_outcome_was_not_recorded(
    store: Store, case: str, how: str
) -> None:
    """MuninnDB applies the call, then the sync dies (or never hears back) before it
    records the new state; the local change is then undone. The next sync must not trust
    the stale record ("already there" / "already gone") and leave MuninnDB wrong."""
    before, tool, after = UNDONE[case]
    with store.write() as s:
        mid = memories.add(s, "use tabs", scope="/srv/shop").memory.id
    with MuninnStub() as stub:
        sync = Syncer(store, MuninnClient(stub.url, timeout=5))
        sync.run()
        if tool == "muninn_restore":  # the copy must be soft-deleted first
            _change("forget")(store, mid)
            sync.run()
        before(store, mid)
        if how == "killed":
            with pytest.raises(Died):
                Syncer(store, DiesAfter(stub.url, tool)).run()
        else:
            stub.fault = lambda t, _a: Fault(drop=True, after=True) if t == tool else None
            assert sync.run().stopped
            stub.fault = None
        (copy,) = stub.memories.values()  # MuninnDB applied the call
        assert copy.state == ("active" if tool == "muninn_restore" else "soft_deleted")
        after(store, mid)
        assert not sync.run(force=True).stopped
        assert_mirrored(store, stub)
        with store.read() as conn:
            assert outbox.counts(conn)["pending"] == 0 and outbox.counts(conn)["failed"] == 0


def test_a_large_outbox_drains_with_flat_memory(tmp_path: Path) -> None:
    """20,000 rows in ten runs; `bench/mirror.py` drains 100,000 and prints the table."""
    n = 20_000
    done = drain(tmp_path / "big.db", n, steps=10)
    assert done.counts == {"pending": 0, "done": n, "failed": 0}
    assert done.mirrored == n
    assert done.growth < 12, done.samples
