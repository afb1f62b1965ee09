"""The database file itself: creation, permissions, migrations, refusals, concurrency."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import Cli

from engram.errors import EngramError
from engram.store import schema
from engram.store.db import Store


def test_created_private_with_wal_and_fts(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "engram.db"
    store = Store(path)
    store.ensure()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert {"memories", "events", "memories_fts", "alembic_version"} <= names
    assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == schema.HEAD
    conn.close()
    with store.write() as session:
        fk = session.connection().exec_driver_sql("PRAGMA foreign_keys").scalar()
        timeout = session.connection().exec_driver_sql("PRAGMA busy_timeout").scalar()
    assert (fk, timeout) == (1, 5000)
    store.close()


def test_revisions_constant_matches_alembic_scripts() -> None:
    import engram.migrations
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(engram.migrations.__file__).parent))
    scripts = ScriptDirectory.from_config(cfg)
    ordered = [s.revision for s in reversed(list(scripts.walk_revisions()))]
    assert tuple(ordered) == schema.REVISIONS
    assert scripts.get_current_head() == schema.HEAD


@pytest.mark.parametrize("start", [None, *schema.REVISIONS])
def test_upgrade_from_every_revision(tmp_path: Path, start: str | None) -> None:
    """Create a database at each earlier revision with Alembic, then let engram open it."""
    import engram.migrations
    from alembic import command
    from alembic.config import Config

    path = tmp_path / "old.db"
    store = Store(path)
    store._check_file()
    if start is not None:
        cfg = Config()
        cfg.set_main_option("script_location", str(Path(engram.migrations.__file__).parent))
        with store.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, start)
    assert store.current_revision() == start
    store.ensure()
    assert store.current_revision() == schema.HEAD
    from engram.store import memories

    with store.write() as session:
        memories.add(session, "still works")
    store.close()


def test_downgrade_to_base_and_back(tmp_path: Path) -> None:
    import engram.migrations
    from alembic import command
    from alembic.config import Config

    store = Store(tmp_path / "e.db")
    store.ensure()
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(engram.migrations.__file__).parent))
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert store.current_revision() is None
    store._ready = False
    store.ensure()
    assert store.current_revision() == schema.HEAD
    store.close()


def test_newer_schema_is_refused(cli: Cli, db_path: Path) -> None:
    cli("add", "x")
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE alembic_version SET version_num = '9999'")
    conn.commit()
    conn.close()
    result = cli.fail("list")
    assert "newer than this engram" in result.stderr
    assert "9999" in result.stderr


def test_not_a_sqlite_file_is_never_overwritten(cli: Cli, db_path: Path) -> None:
    db_path.write_bytes(b"my precious notes\n")
    for args in (["list"], ["add", "x"], ["db", "upgrade"]):
        assert "not a SQLite database" in cli.fail(*args).stderr
    assert db_path.read_bytes() == b"my precious notes\n"


def test_foreign_sqlite_database_is_refused(cli: Cli, tmp_path: Path) -> None:
    db_path = tmp_path / "photos.db"
    cli = Cli(db_path, cli.runner)
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    assert "not engram's" in cli.fail("add", "x").stderr
    tables = sqlite3.connect(db_path).execute("SELECT name FROM sqlite_master").fetchall()
    assert tables == [("photos",)]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_path_non_root(cli: Cli, tmp_path: Path) -> None:  # pragma: no cover
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o500)
    result = Cli(locked / "sub" / "e.db", cli.runner).fail("list")
    assert "permission denied" in result.stderr


def test_unwritable_path(cli: Cli, tmp_path: Path) -> None:
    # A path under a regular file cannot be created, even by root.
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = Cli(blocker / "e.db", cli.runner).fail("add", "x")
    assert result.stderr.startswith("error: cannot create database")
    result = Cli(tmp_path, cli.runner).fail("add", "x")
    assert "is a directory" in result.stderr


def test_reading_never_creates_a_database(cli: Cli, tmp_path: Path) -> None:
    """A mistyped --db / ENGRAM_DB must not leave empty databases and directories behind."""
    missing = tmp_path / "nonexistent" / "dir" / "x.db"
    for command in (["list"], ["search", "x"], ["status"], ["log"], ["stats"], ["show", "m-abcd"]):
        result = Cli(missing, cli.runner).fail(*command)
        assert result.stderr.startswith(f"error: no engram database at {missing}")
        assert result.stderr.count("error:") == 1
    assert not (tmp_path / "nonexistent").exists()


def test_locked_database_gives_clear_error_and_changes_nothing(cli: Cli, db_path: Path) -> None:
    cli("add", "before")
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        result = cli("add", "during", ok=False, env={"ENGRAM_STORE_BUSY_TIMEOUT_MS": "200"})
        assert result.exit_code == 1
        assert "locked by another process" in result.stderr and "0.2 s" in result.stderr
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert [r["content"] for r in cli.json("list")] == ["before"]


WRITER = textwrap.dedent(
    """
    import sys
    from engram.store.db import Store
    from engram.store import memories
    store = Store(sys.argv[1], busy_timeout_ms=60000)
    tag, count = sys.argv[2], int(sys.argv[3])
    print("ready", flush=True)
    sys.stdin.readline()  # both writers start together
    for i in range(count):
        with store.write() as session:
            memories.add(session, f"{tag} fact {i}")
    print("done")
    """
)


def run_writers(db_path: Path, script: str, count: int) -> None:
    """Two processes adding `count` memories each, released at the same moment so their
    writes interleave (starting a Python process takes longer than 200 adds)."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(db_path), tag, str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for tag in ("left", "right")
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == b"ready"
    for p in procs:
        out, err = p.communicate(b"go\n", timeout=240)
        assert p.returncode == 0, err.decode()
        assert out.strip() == b"done"


def test_two_processes_add_200_each(db_path: Path) -> None:
    run_writers(db_path, WRITER, 200)
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT count(*) FROM memories").fetchone()[0] == 400
    assert conn.execute("SELECT count(DISTINCT id) FROM memories").fetchone()[0] == 400
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 400
    # The FTS index kept up with every insert.
    assert (
        conn.execute(
            "SELECT count(*) FROM memories_fts WHERE memories_fts MATCH 'fact'"
        ).fetchone()[0]
        == 400
    )
    conn.close()


def test_same_fact_from_two_processes_is_stored_once(db_path: Path) -> None:
    run_writers(db_path, WRITER.replace('f"{tag} fact {i}"', 'f"shared fact {i % 50}"'), 150)
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT count(*) FROM memories").fetchone()[0] == 50


def test_fts_follows_edits(store: Store) -> None:
    from engram.store import memories, reader

    with store.write() as session:
        mid = memories.add(session, "the cache lives in redis").memory.id
    with store.write() as session:
        memories.edit(session, mid, "the cache lives in memcached")
    with store.read() as conn:
        assert reader.search(conn, "redis") == []
        assert reader.search(conn, "memcached")[0].memory.id == mid


def test_ids_are_short_base32() -> None:
    ids = {schema.new_id() for _ in range(2000)}
    assert len(ids) == 2000
    for i in ids:
        assert len(i) == 10 and i.startswith("m-")
        assert set(i[2:]) <= set(schema.ID_ALPHABET)


def test_content_rules() -> None:
    from engram.store.records import validate_content, validate_scope

    assert validate_content("  hi  ") == "hi"
    for bad in ("", " ", "a\x00b", "x" * 4001):
        with pytest.raises(EngramError):
            validate_content(bad)
    assert validate_content("x" * 4000)
    assert validate_scope("/a/b/") == "/a/b"
    with pytest.raises(EngramError):
        validate_scope("a/b")
