"""MuninnDB as a recall source: merged before the gate, within the budget."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engram import config as engram_config
from engram.mirror.client import MuninnClient
from engram.runtime import Runtime
from engram.store import memories
from engram.store.db import Store
from tests.support.muninn_stub import MuninnStub
from tests.support.wait import wait_until

PROJECT = "/home/dev/shop"


@pytest.fixture
def stub() -> Iterator[MuninnStub]:
    with MuninnStub() as server:
        yield server


def with_db(config, store: Store):
    """The config pointed at this test's database."""
    config.override("store.path", str(store.path))
    return config


def cfg(stub: MuninnStub, **extra: str):
    env = {
        "ENGRAM_RECALL_SOURCES": "local,muninn",
        "ENGRAM_MUNINN_ENABLED": "1",
        "MUNINN_MCP_URL": stub.url,
        "ENGRAM_MUNINN_RECALL_THRESHOLD": "0.1",
        **extra,
    }
    return engram_config.load(env=env)


def test_muninn_hits_join_local_candidates(stub: MuninnStub, tmp_path: Path) -> None:
    store = Store(tmp_path / "e.db")
    with store.write() as session:
        memories.add(session, "We deploy with make release", scope=PROJECT)
    client = MuninnClient(stub.url)
    client.remember("engram-global", {"content": "The team rotates on-call every Monday"})
    client.remember("engram-global", {"content": "We deploy with make release"})  # a dup
    # MuninnDB indexes asynchronously: wait until it finds the new memory itself.
    wait_until(
        lambda: client.recall("engram-global", "on-call", threshold=0.05, limit=5),
        what="MuninnDB to index",
    )
    # This test is about merging, not timing: a budget no loaded CI machine can miss.
    recaller = Runtime(with_db(cfg(stub, ENGRAM_PROXY_RECALL_BUDGET_MS="5000"), store)).recaller()
    recaller.warm()
    result = recaller.recall("who is on-call rotation monday", PROJECT)
    remote = [c for c in result.candidates if c.id.startswith("muninn:")]
    assert [c.content for c in remote] == ["The team rotates on-call every Monday"]
    assert remote[0].injected and "rotates on-call" in (result.block_text or "")
    # What both stores say appears once.
    both = recaller.recall("how do we deploy with make release", PROJECT)
    assert [c.content for c in both.candidates].count("We deploy with make release") == 1


def test_slow_muninn_never_delays_recall_past_the_budget(stub: MuninnStub, tmp_path: Path) -> None:
    store = Store(tmp_path / "e.db")
    with store.write() as session:
        memories.add(session, "Staging runs on port 5433", scope=PROJECT)
    stub.latency = 3.0
    recaller = Runtime(with_db(cfg(stub, ENGRAM_PROXY_RECALL_BUDGET_MS="50"), store)).recaller()
    recaller.warm()
    started = time.monotonic()
    result = recaller.recall("which port is staging on", PROJECT)
    assert time.monotonic() - started < 1.5  # the budget (50 ms), not MuninnDB's 3 s
    assert not any(c.id.startswith("muninn:") for c in result.candidates)


def test_muninn_source_needs_the_mirror_enabled(stub: MuninnStub, tmp_path: Path) -> None:
    runtime = Runtime(with_db(cfg(stub, ENGRAM_MUNINN_ENABLED="0"), Store(tmp_path / "e.db")))
    assert runtime.recaller().remote is None
