"""`engram mirror status|sync|retry|pull`, the watcher's mirror job, and MuninnDB as a
recall source."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli

from engram.cli.reporter import Reporter
from engram.mirror.client import MuninnClient
from engram.mirror.recall import local_copies, muninn_candidates
from engram.sources.mitmweb import MitmwebUnavailable
from engram.sources.scheduler import Scheduler, Timing
from engram.store import memories
from engram.store.db import Store
from tests.support.muninn_stub import Fault, MuninnStub, assert_mirrored
from tests.support.wait import wait_until


@pytest.fixture
def stub() -> Iterator[MuninnStub]:
    with MuninnStub() as s:
        yield s


def env(stub: MuninnStub, **extra: str) -> dict[str, str]:
    return {"ENGRAM_MUNINN_ENABLED": "1", "MUNINN_MCP_URL": stub.url, **extra}


def add(store: Store, *texts: str, scope: str = "global") -> list[str]:
    with store.write() as s:
        return [memories.add(s, t, scope=scope).memory.id for t in texts]


def test_status_json_before_and_after_a_sync(cli: Cli, stub: MuninnStub, store: Store) -> None:
    add(store, "one", "two")
    data = cli.json("mirror", "status")
    assert data["enabled"] is False and data["pending"] == 2 and data["reachable"] is False
    for key in ("url", "vault", "global_vault", "failed", "last_success", "last_error"):
        assert key in data
    assert data["global_vault"] == "engram-global"
    out = cli("mirror", "sync", ok=False)
    assert out.exit_code == 2 and "muninn.enabled" in out.stderr
    result = cli("mirror", "sync", env=env(stub))
    assert "mirrored 2 memories" in result.stdout
    data = cli.json("mirror", "status", env=env(stub))
    assert data["enabled"] and data["reachable"] and data["authorized"]
    assert data["url"] == stub.url and data["pending"] == 0 and data["failed"] == 0
    assert data["last_success"] and data["last_error"] is None
    assert_mirrored(store, stub)


def test_failed_operations_show_and_retry_requeues(
    cli: Cli, stub: MuninnStub, store: Store
) -> None:
    add(store, "fine", "refused")
    stub.fault = lambda tool, args: (
        Fault(rpc_error=(-32000, "tool error: disk full"))
        if "refused" in json.dumps(args)
        else None
    )
    cli("mirror", "sync", env=env(stub))
    data = cli.json("mirror", "status", env=env(stub))
    assert data["failed"] == 1 and "disk full" in data["last_error"]["message"]
    assert "disk full" in data["failed_operations"][0]["last_error"]
    text = cli("mirror", "status", env=env(stub)).stdout
    assert "disk full" in text and "failed" in text
    stub.fault = None
    assert "re-queued 1" in cli("mirror", "retry").stdout
    cli("mirror", "sync", env=env(stub))
    assert cli.json("mirror", "status", env=env(stub))["failed"] == 0
    assert_mirrored(store, stub)


def test_401_is_one_clear_line_and_nothing_is_lost(cli: Cli, store: Store, tmp_path: Path) -> None:
    add(store, "secret plans")
    with MuninnStub(token="mdb_" + "b" * 48) as stub:
        result = cli("mirror", "sync", env=env(stub, MUNINN_TOKEN="mdb_wrong"), ok=False)
        assert result.exit_code == 1 and "MUNINN_TOKEN" in result.stderr
        assert cli.json("mirror", "status")["pending"] == 1
        data = cli.json("mirror", "status", env=env(stub))
        assert data["reachable"] and data["authorized"] is False
        token_file = tmp_path / "mcp.token"
        token_file.write_text("mdb_" + "b" * 48)
        token_file.chmod(0o600)
        cli("mirror", "sync", env=env(stub, ENGRAM_MUNINN_TOKEN_FILE=str(token_file)))
        assert_mirrored(store, stub)


def test_token_over_plain_http_is_refused(cli: Cli) -> None:
    result = cli(
        "mirror",
        "sync",
        ok=False,
        env={
            "ENGRAM_MUNINN_ENABLED": "1",
            "MUNINN_MCP_URL": "http://192.0.2.10:8750/mcp",
            "MUNINN_TOKEN": "mdb_x",
        },
    )
    assert result.exit_code == 2 and "plain HTTP" in result.stderr


def test_pull_into_an_empty_store_is_idempotent(
    cli: Cli, stub: MuninnStub, store: Store, tmp_path: Path
) -> None:
    project = "/home/alice/Shop API"
    add(store, *[f"shop fact {i}" for i in range(150)], scope=project)
    add(store, "I prefer small commits", "I review on Fridays")
    with store.write() as s:
        memories.forget(s, add(store, "an old habit")[0])
    cli("mirror", "sync", env=env(stub))
    here = tmp_path / "bob" / "shop-api"  # another machine, another path, same vault
    here.mkdir(parents=True)
    other = Cli(tmp_path / "bob.db", cli.runner)
    args = ("mirror", "pull", "--vault", "shop-api", "--scope", str(here))
    reports = other.json(*args, env=env(stub))
    assert reports[0]["added"] == 150 and not reports[0]["incomplete"]
    assert reports[0]["windows"] > 1  # more than one recall window was needed
    reports = other.json("mirror", "pull", "--vault", "engram-global", env=env(stub))
    assert reports[0]["added"] == 2 and reports[0]["scope"] == "global"
    again = other.json(*args, env=env(stub))
    assert again[0]["added"] == 0 and again[0]["existing"] == 150
    bob = Store(tmp_path / "bob.db")
    try:
        listed = other.json("list")
        assert {m["source"] for m in listed} == {"muninn"} and len(listed) == 152
        calls = sum(stub.calls.values())
        other("mirror", "sync", env=env(stub))  # already there: nothing to push
        assert sum(stub.calls.values()) == calls
        assert_mirrored(bob, stub)
    finally:
        bob.close()


def test_pull_does_not_resurrect_what_was_forgotten_here(
    cli: Cli, stub: MuninnStub, store: Store
) -> None:
    client = MuninnClient(stub.url)
    client.remember("engram-global", {"content": "use yarn", "tags": ["kind:preference"]})
    client.remember("engram-global", {"content": "tabs are fine"})
    (gone,) = add(store, "use yarn")
    with store.write() as s:
        memories.forget(s, gone)
    (report,) = cli.json("mirror", "pull", "--vault", "engram-global", env=env(stub))
    assert report["added"] == 1 and report["skipped"] == 1
    kinds = {m["content"]: m["kind"] for m in cli.json("list")}
    assert kinds == {"tabs are fine": "fact"}


def test_watcher_runs_the_mirror_job_and_reports_outages_once(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    from engram.config import MuninnConfig
    from engram.mirror.job import sync_job

    class DownWatcher:
        name = "mitmweb"

        def poll(self) -> Any:
            raise MitmwebUnavailable("mitmweb is down")

    stub = MuninnStub().start()
    stub.stop()
    cfg = MuninnConfig(enabled=True, url=stub.url)
    add(store, "remember me")
    daemon = Scheduler(
        store, Reporter(log_json=True), Timing(), sources=[DownWatcher()], sync=sync_job(store, cfg)
    )
    daemon.run_once()
    daemon._outages.clear()  # the source's backoff is over
    daemon.run_once()
    events = [json.loads(line)["event"] for line in capsys.readouterr().out.splitlines()]
    assert events.count("mirror_down") == 1
    stub.start()
    try:
        from engram.store import outbox

        outbox.retry_failed(store)  # clears the backoff so the job tries at once
        daemon.run_once()
        events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [e["event"] for e in events if e["event"].startswith("mirror")] == [
            "mirror_back",
            "mirror",
        ]
        assert_mirrored(store, stub)
    finally:
        stub.stop()


def test_recall_source_merges_vaults_and_handles_null(stub: MuninnStub) -> None:
    client = MuninnClient(stub.url)
    client.remember("shop-api", {"content": "payments use idempotency keys"})
    client.remember("engram-global", {"content": "payments use idempotency keys"})
    client.remember("engram-global", {"content": "I like idempotency in payments code"})
    wait_until(stub.indexed, what="MuninnDB's index")  # indexing is asynchronous
    hits = muninn_candidates(
        client,
        "payments idempotency",
        ["shop-api", "engram-global"],
        limit=10,
        threshold=0.1,
        timeout=2.0,
    )
    assert len(hits) == 2  # the same text in two vaults counts once
    assert all(0 < h.score < 0.4 and h.id and h.content_hash for h in hits)
    assert hits[0].score >= hits[1].score
    assert muninn_candidates(client, "nothing matches", ["shop-api"], 5, 0.1, 2.0) == []
    assert muninn_candidates(client, "payments", ["shop-api"], 5, 0.9, 2.0) == []


def test_recall_source_never_exceeds_its_budget(stub: MuninnStub) -> None:
    client = MuninnClient(stub.url)
    client.remember("fast", {"content": "fast vault knows deploys"})
    wait_until(stub.indexed, what="MuninnDB's index")

    def slow(tool: str, args: dict[str, Any]) -> None:
        if args.get("vault") == "slow":
            time.sleep(3.0)

    stub.fault = slow
    start = time.monotonic()
    hits = muninn_candidates(client, "deploys", ["slow", "fast"], 5, 0.1, timeout=0.2)
    assert time.monotonic() - start < 1.5  # the budget (0.2 s), not the slow vault (3 s)
    assert [h.vault for h in hits] == ["fast"]
    stub.stop()  # down: no hits, no exception
    assert muninn_candidates(client, "deploys", ["fast"], 5, 0.1, timeout=0.2) == []
    wait_until(  # the abandoned call's thread ends on its own
        lambda: not any(t.name.startswith("muninn-recall") for t in threading.enumerate()),
        timeout=5,
        what="the abandoned recall thread to end",
    )


def test_local_copies_are_recognised(cli: Cli, stub: MuninnStub, store: Store) -> None:
    (mid,) = add(store, "deploys need a changelog entry")
    cli("mirror", "sync", env=env(stub))
    wait_until(stub.indexed, what="MuninnDB's index")
    hits = muninn_candidates(
        MuninnClient(stub.url), "changelog deploys", ["engram-global"], 5, 0.1, 2.0
    )
    with store.read() as conn:
        assert local_copies(conn, hits) == {hits[0].id: mid}
