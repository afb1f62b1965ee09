"""The sync job against the stand-in MuninnDB: in every scenario MuninnDB ends with exactly
the local active memories, once each (`assert_mirrored`)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from engram.mirror.client import MuninnClient
from engram.mirror.sync import MirrorSettings, Syncer
from engram.store import memories, outbox, schema
from engram.store.db import Store
from tests.support.muninn_stub import Fault, MuninnStub, assert_mirrored
from tests.support.wait import wait_until

PROJECT = "/srv/Shop API"  # -> vault "shop-api"


@pytest.fixture
def stub() -> Iterator[MuninnStub]:
    with MuninnStub() as s:
        yield s


def syncer(store: Store, stub: MuninnStub, **kw: Any) -> Syncer:
    clock = kw.pop("clock", schema.now_iso)
    return Syncer(store, MuninnClient(stub.url, timeout=5), MirrorSettings(**kw), clock=clock)


def add(store: Store, *texts: str, scope: str = "global", kind: str = "fact") -> list[str]:
    with store.write() as s:
        return [memories.add(s, t, scope=scope, kind=kind).memory.id for t in texts]


def rows(store: Store) -> dict[str, int]:
    with store.read() as conn:
        return outbox.counts(conn)


def test_mirror_1000_memories_in_batches(store: Store, stub: MuninnStub) -> None:
    for scope in ("global", PROJECT, "/home/me/Other Repo"):
        add(store, *[f"{scope} fact {i}" for i in range(333)], scope=scope)
    add(
        store,
        "npm install hangs behind the VPN: use --prefer-offline",
        kind="gotcha",
        scope=PROJECT,
    )
    start = time.perf_counter()
    report = syncer(store, stub).run()
    elapsed = time.perf_counter() - start
    print(f"\nmirrored 1000 memories in {elapsed:.2f} s, {sum(stub.calls.values())} calls")
    assert report.memories == 1000 and report.remembered == 1000 and not report.failed
    assert stub.calls["muninn_remember_batch"] <= 24 and elapsed < 20
    assert_mirrored(store, stub)
    assert {m.vault for m in stub.active()} == {"engram-global", "shop-api", "other-repo"}
    gotcha = next(m for m in stub.active() if m.content.startswith("npm install"))
    assert gotcha.type == "gotcha" and "kind:gotcha" in gotcha.tags
    assert "project:Shop API" in gotcha.tags and "engram" in gotcha.tags
    assert gotcha.concept and len(gotcha.concept) <= 61
    assert rows(store) == {"pending": 0, "done": 1000, "failed": 0}
    calls = sum(stub.calls.values())
    assert syncer(store, stub).run().memories == 0 and sum(stub.calls.values()) == calls


def test_supersede_and_forget_chains(store: Store, stub: MuninnStub) -> None:
    (a,) = add(store, "deploys run on Fridays", scope=PROJECT)
    sync = syncer(store, stub)
    sync.run()
    with store.write() as s:  # two supersedes and a forget, all queued before one sync
        _, b = memories.supersede(s, a, "deploys run on Thursdays")
        _, c = memories.supersede(s, b.id, "deploys run on Wednesdays")
        (d,) = [memories.add(s, "temporary note", scope=PROJECT).memory.id]
        memories.forget(s, d)
    report = sync.run()
    assert_mirrored(store, stub)
    # b never reached MuninnDB before being superseded: only a's copy is linked
    assert report.linked == 1 and len(stub.links) == 1
    ((_vault, src, dst, rel),) = stub.links
    assert rel == "supersedes" and stub.memories[dst].content == "deploys run on Fridays"
    assert stub.memories[src].content == "deploys run on Wednesdays"
    with store.write() as s:
        _, e = memories.supersede(s, c.id, "deploys run on Tuesdays")
    sync.run()
    assert_mirrored(store, stub)
    assert len(stub.links) == 2
    with store.write() as s:
        memories.forget(s, e.id)
        memories.restore(s, b.id)  # a superseded fact comes back
    sync.run()
    assert_mirrored(store, stub)
    assert [m.content for m in stub.active()] == ["deploys run on Thursdays"]
    assert rows(store)["pending"] == 0


def test_edit_forgets_the_old_copy_and_coalesces(store: Store, stub: MuninnStub) -> None:
    (a,) = add(store, "use tabs")
    sync = syncer(store, stub)
    sync.run()
    old = stub.active()[0].id
    with store.write() as s:
        memories.edit(s, a, "use spaces")
        memories.edit(s, a, "use 4 spaces")
    report = sync.run()
    assert report.remembered == 1 and report.forgotten == 1  # one round trip for two edits
    assert stub.memories[old].state == "soft_deleted"
    assert_mirrored(store, stub)
    with store.write() as s:  # an edit that changes only case or spacing is the same fact
        memories.edit(s, a, "Use 4 spaces.")
    assert sync.run().remembered == 0


def test_restore_within_7_days_else_remember_again(store: Store, stub: MuninnStub) -> None:
    now = [schema.now_iso()]
    sync = syncer(store, stub, clock=lambda: now[0])
    (a,) = add(store, "the staging DB is read-only on weekends")
    sync.run()
    first = stub.active()[0].id
    for step in ("forget", "restore"):
        with store.write() as s:
            getattr(memories, step)(s, a)
        sync.run()
    assert stub.calls["muninn_restore"] == 1 and stub.active()[0].id == first
    with store.write() as s:
        memories.forget(s, a)
    sync.run()
    now[0] = schema.to_iso(schema.parse_iso(now[0]) + timedelta(days=8))
    with store.write() as s:
        memories.restore(s, a)
    sync.run()
    assert stub.calls["muninn_restore"] == 1  # too old: remembered again, a new id
    second = stub.active()[0].id
    assert second != first
    assert_mirrored(store, stub)
    with store.write() as s:  # forgotten recently, but MuninnDB purged it anyway
        memories.forget(s, a)
    sync.run()
    stub.purge(second)
    with store.write() as s:
        memories.restore(s, a)
    sync.run()
    assert stub.calls["muninn_restore"] == 2 and stub.active()[0].id not in (first, second)
    assert_mirrored(store, stub)


def test_refusals_fail_that_memory_and_the_rest_continue(store: Store, stub: MuninnStub) -> None:
    def fault(tool: str, args: dict[str, Any]) -> Fault | None:
        if tool == "muninn_remember_batch":  # one bad item rejects the whole call
            return Fault(rpc_error=(-32602, "invalid params: memories[1].content is required"))
        if tool == "muninn_remember" and args["content"] == "bad one":
            return Fault(rpc_error=(-32000, "tool error: storage says no"))
        return None

    stub.fault = fault
    add(store, "good one", "bad one", "another good one")
    report = syncer(store, stub).run()
    assert report.failed == 1 and report.remembered == 2  # retried one by one
    assert "storage says no" in report.errors[0]
    assert rows(store) == {"pending": 0, "done": 2, "failed": 1}
    with store.read() as conn:
        failed = outbox.failed_rows(conn)
        last = outbox.get_states(conn)[outbox.K_ERROR]
    assert "storage says no" in failed[0]["last_error"] and "storage says no" in last
    stub.fault = None
    assert outbox.retry_failed(store) == 1
    syncer(store, stub).run()
    assert rows(store) == {"pending": 0, "done": 3, "failed": 0}
    assert_mirrored(store, stub)


def test_content_over_the_size_limit_is_recorded(store: Store, stub: MuninnStub) -> None:
    stub.max_content = 500
    add(store, "short", "x" * 600)
    with store.write() as s:  # bigger than MuninnDB's 16 KiB: never sent at all
        (big,) = [memories.add(s, "placeholder").memory.id]
        s.connection().exec_driver_sql(
            "UPDATE memories SET content = ? WHERE id = ?", ("é" * 9000, big)
        )
    report = syncer(store, stub).run()
    assert report.failed == 2 and report.remembered == 1
    assert any("content exceeds max length 500" in e for e in report.errors)
    assert any("18000 bytes; MuninnDB's limit is 16384" in e for e in report.errors)
    assert rows(store)["failed"] == 2


def test_malformed_answers_are_retried_then_failed(store: Store, stub: MuninnStub) -> None:
    add(store, "a fact", "another fact")
    garbled = Fault(body=b'{"jsonrpc":"2.0","id":1,"result":"??"}')
    stub.fault = lambda tool, args: garbled if "another" in str(args) else None
    sync = syncer(store, stub, max_attempts=3)
    for attempt in (1, 2):
        report = sync.run(force=True)  # the batch, then each alone: one answer is bad
        assert report.retrying == 1 and not report.stopped
        with store.read() as conn:
            assert conn.execute("SELECT max(attempts) FROM mirror_outbox").fetchone()[0] == attempt
    sync.run(force=True)
    assert rows(store) == {"pending": 0, "done": 1, "failed": 1}
    stub.fault = lambda tool, args: garbled  # every answer unreadable: stop after three
    add(store, *[f"more {i}" for i in range(20)])
    report = sync.run(force=True)
    assert report.stopped and report.retrying == 3 and rows(store)["pending"] == 20
    stub.fault = None
    outbox.retry_failed(store)
    sync.run(force=True)
    assert_mirrored(store, stub)


def test_401_keeps_everything_pending_with_one_clear_message(store: Store) -> None:
    add(store, "a fact")
    with MuninnStub(token="mdb_right") as stub:
        report = syncer(store, stub).run()
        assert report.auth_error and "MUNINN_TOKEN" in (report.stopped or "")
        assert "~/.muninn/mcp.token" in (report.stopped or "")
        assert rows(store) == {"pending": 1, "done": 0, "failed": 0}


def test_down_at_start_backs_off_durably_then_drains(store: Store) -> None:
    stub = MuninnStub().start()
    stub.stop()  # a free port that nothing listens on, until the stub comes back
    add(store, *[f"fact {i}" for i in range(120)])
    sync = syncer(store, stub, max_backoff=4.0)
    waits = []
    for _ in range(4):
        report = sync.run(force=True)
        assert report.stopped and "unreachable" in report.stopped
        with store.read() as conn:
            state = outbox.get_states(conn)
        waits.append(
            (
                schema.parse_iso(state[outbox.K_RETRY]) - schema.parse_iso(schema.now_iso())
            ).total_seconds()
        )
    assert [round(w) for w in waits] == [1, 2, 4, 4]  # exponential, capped
    assert sync.run().skipped and "next attempt" in (sync.run().skipped or "")
    with store.read() as conn:
        assert (
            conn.execute(
                "SELECT count(*) FROM mirror_outbox WHERE next_attempt_at IS NOT NULL"
            ).fetchone()[0]
            > 0
        )
    assert rows(store) == {"pending": 120, "done": 0, "failed": 0}  # nothing dropped
    stub.start()
    try:
        assert sync.run(force=True).memories == 120  # by hand: the backoff is ignored
        assert_mirrored(store, stub)
        with store.read() as conn:
            assert outbox.K_RETRY not in outbox.get_states(conn)
    finally:
        stub.stop()


def test_server_stops_mid_sync_and_restarts(store: Store, stub: MuninnStub) -> None:
    add(store, *[f"fact {i}" for i in range(600)], scope=PROJECT)
    batches = [0]

    def fault(tool: str, args: dict[str, Any]) -> Fault | None:
        if tool == "muninn_remember_batch":
            batches[0] += 1
            if batches[0] == 3:  # applied, but the server dies before answering
                threading.Thread(target=stub.stop).start()
                return Fault(drop=True, after=True)
        return None

    stub.fault = fault
    sync = syncer(store, stub)
    report = sync.run()
    assert report.stopped and rows(store)["done"] == 100
    wait_until(lambda: not stub.running, timeout=5, what="the stub to stop")
    assert sync.run(force=True).stopped  # still down
    stub.fault = None
    stub.start()
    sync.run(force=True)
    assert_mirrored(store, stub)  # the lost batch was matched by content, not duplicated


def test_lost_answers_leave_nothing_stray_after_local_changes(
    store: Store, stub: MuninnStub
) -> None:
    ids = add(store, "one", "two", "three")
    (single,) = add(store, "alone", scope=PROJECT)
    dropped: set[str] = set()

    def fault(tool: str, args: dict[str, Any]) -> Fault | None:
        if tool in dropped:
            return None
        dropped.add(tool)  # each kind of call once: applied, the answer lost
        return Fault(drop=True, after=True)

    stub.fault = fault
    assert syncer(store, stub).run(force=True).stopped  # the batch
    assert syncer(store, stub).run(force=True).stopped  # the single remember (with op_id)
    assert len(stub.active()) == 4  # MuninnDB has them all; we never heard back
    with store.write() as s:
        memories.forget(s, ids[0])
        memories.edit(s, ids[1], "two, edited")
        memories.edit(s, single, "alone, edited")
    stub.fault = None
    syncer(store, stub).run(force=True)
    assert_mirrored(store, stub)


def test_one_muninn_memory_shared_by_two_local_ones(store: Store, stub: MuninnStub) -> None:
    a = add(store, "same text", scope="/a/app")[0]
    b = add(store, "same text", scope="/b/app")[0]  # both map to vault "app"
    sync = syncer(store, stub)
    sync.run()
    assert len(stub.active()) == 1
    with store.write() as s:
        memories.forget(s, a)
    sync.run()
    assert len(stub.active()) == 1  # b still uses it
    with store.write() as s:
        memories.forget(s, b)
    sync.run()
    assert_mirrored(store, stub)
    assert not stub.active()


def test_order_per_memory_and_backoff_per_row(store: Store, stub: MuninnStub) -> None:
    a, _b = add(store, "first", "second")
    later = schema.to_iso(schema.parse_iso(schema.now_iso()) + timedelta(hours=1))
    with store.write() as s:
        memories.edit(s, a, "first, edited")
        s.connection().exec_driver_sql(
            "UPDATE mirror_outbox SET next_attempt_at = ? WHERE memory_id = ? AND op = 'add'",
            (later, a),
        )
    report = syncer(store, stub).run()  # a's newer edit must not overtake its waiting add
    assert report.memories == 1 and [m.content for m in stub.active()] == ["second"]
    syncer(store, stub).run(force=True)
    assert_mirrored(store, stub)


def test_vault_change_and_resync(store: Store, stub: MuninnStub) -> None:
    add(store, "p1", "p2", scope=PROJECT)
    syncer(store, stub).run()
    assert outbox.resync(store) == 2
    syncer(store, stub, vault="team").run()
    assert {m.vault for m in stub.active()} == {"team"}
    assert_mirrored(store, stub, vault="team")


def test_outbox_rows_commit_with_the_change(store: Store) -> None:
    with pytest.raises(RuntimeError), store.write() as s:
        memories.add(s, "never committed")
        raise RuntimeError("rollback")
    assert rows(store) == {"pending": 0, "done": 0, "failed": 0}
    (a,) = add(store, "kept")
    with store.write() as s:
        memories.add(s, "kept")  # the same fact again: no change, no row
        memories.forget(s, a)
        memories.forget(s, a)  # already forgotten: no change, no row
    with store.read() as conn:
        ops = [r[0] for r in conn.execute("SELECT op FROM mirror_outbox ORDER BY id")]
    assert ops == ["add", "forget"]


def test_migration_queues_memories_that_already_exist(tmp_path: Any) -> None:
    import engram.migrations
    from alembic import command
    from alembic.config import Config

    store = Store(tmp_path / "old.db")
    store._check_file()
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(engram.migrations.__file__).parent))
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0004")
    conn = sqlite3.connect(store.path)
    for i, status in enumerate(("active", "forgotten", "active")):
        conn.execute(
            "INSERT INTO memories (id, content, kind, scope, source, status, "
            "created_at, updated_at, content_hash) VALUES (?, ?, 'fact', 'global', "
            "'manual', ?, '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z', ?)",
            (f"m-old{i}", f"old {i}", status, f"h{i}"),
        )
    conn.commit()
    conn.close()
    store.ensure()
    assert rows(store) == {"pending": 2, "done": 0, "failed": 0}
    store.close()
