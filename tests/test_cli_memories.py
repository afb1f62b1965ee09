"""The memory commands through typer's runner, against a real SQLite file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from conftest import Cli

LIST_FIELDS = {
    "id",
    "content",
    "kind",
    "scope",
    "status",
    "source",
    "created_at",
    "updated_at",
    "use_count",
}


def test_add_prints_id_and_list_json_has_contract_fields(cli: Cli) -> None:
    mid = cli("add", "We use pnpm, not npm", "--kind", "preference").stdout.strip()
    assert mid.startswith("m-") and len(mid) == 10
    rows = cli.json("list")
    assert len(rows) == 1
    assert rows[0].keys() >= LIST_FIELDS
    row = rows[0]
    assert (
        row["id"],
        row["content"],
        row["kind"],
        row["scope"],
        row["status"],
        row["source"],
        row["use_count"],
    ) == (mid, "We use pnpm, not npm", "preference", "global", "active", "manual", 0)
    assert row["created_at"].endswith("Z")


def test_add_json_returns_record(cli: Cli, tmp_path: Path) -> None:
    data = cli.json("add", "Deploys go through make release", "--scope", str(tmp_path))
    assert data["scope"] == str(tmp_path.resolve()) and data["created"] is True


def test_duplicate_add_returns_existing_id_and_says_so(cli: Cli) -> None:
    first = cli("add", "Use ruff for linting.").stdout.strip()
    again = cli("add", "  use RUFF   for linting ")
    assert again.stdout.strip() == first
    assert "already remembered" in again.stderr
    assert len(cli.json("list")) == 1
    # The same text in another scope is another memory.
    cli("add", "Use ruff for linting.", "--scope", "/srv/other")
    assert len(cli.json("list")) == 2


def test_list_filters_order_and_all(cli: Cli) -> None:
    a = cli("add", "first fact").stdout.strip()
    b = cli("add", "second fact", "--kind", "gotcha", "--scope", "/p/one").stdout.strip()
    c = cli("add", "third fact", "--kind", "gotcha").stdout.strip()
    assert [r["id"] for r in cli.json("list")] == [c, b, a]
    assert [r["id"] for r in cli.json("list", "--kind", "gotcha")] == [c, b]
    assert [r["id"] for r in cli.json("list", "--scope", "/p/one")] == [b]
    assert [r["id"] for r in cli.json("list", "--scope", "global", "--limit", "1")] == [c]
    cli("forget", a)
    assert [r["id"] for r in cli.json("list")] == [c, b]
    assert {r["id"]: r["status"] for r in cli.json("list", "--all")}[a] == "forgotten"
    table = cli("list").stdout
    assert b in table and "second fact" in table and a not in table


def test_table_list_caps_at_50_and_says_so(cli: Cli, store) -> None:
    from engram.store import memories

    with store.write() as session:
        for i in range(55):
            memories.add(session, f"fact number {i}")
    result = cli("list")
    assert "fact number 54" in result.stdout and "fact number 0 " not in result.stdout
    assert "--limit 0" in result.stderr
    assert len(cli.json("list")) == 55


def test_show_by_prefix_and_ambiguous_prefix(cli: Cli, store) -> None:
    from engram.store import memories

    mid = cli("add", "Postgres runs on port 5433 here").stdout.strip()
    shown = cli("show", mid[2:6]).stdout
    assert "Postgres runs on port 5433 here" in shown and mid in shown
    assert cli.json("show", mid.upper())["id"] == mid

    # Force two ids that share a 4-character prefix.
    with store.write() as session:
        x = memories.add(session, "one").memory.id
        y = memories.add(session, "two").memory.id
    conn = sqlite3.connect(store.path)
    conn.execute("UPDATE memories SET id = 'm-abcd1111' WHERE id = ?", (x,))
    conn.execute("UPDATE memories SET id = 'm-abcd2222' WHERE id = ?", (y,))
    conn.commit()
    conn.close()
    result = cli.fail("show", "abcd")
    assert "ambiguous" in result.stderr
    assert "m-abcd1111" in result.stderr and "m-abcd2222" in result.stderr
    assert result.stderr.count("\n") == 1  # one line
    assert cli.json("show", "abcd2")["content"] == "two"
    assert "too short" in cli.fail("show", "abc").stderr
    assert "no memory" in cli.fail("show", "zzzzzz").stderr


def test_edit_supersede_forget_restore_and_log(cli: Cli) -> None:
    mid = cli("add", "Tests run with pytest -x").stdout.strip()
    cli("edit", mid, "Tests run with make test")
    assert cli.json("show", mid)["content"] == "Tests run with make test"

    new = cli("supersede", mid, "Tests run with make test PYTEST_ARGS=-x").stdout.strip()
    assert new != mid
    old = cli.json("show", mid)
    assert old["status"] == "superseded" and old["superseded_by"] == new
    assert [r["id"] for r in cli.json("list")] == [new]
    assert "only active" in cli.fail("supersede", mid, "again").stderr

    cli("forget", new)
    assert cli.json("list") == []
    cli("restore", new)
    assert [r["id"] for r in cli.json("list")] == [new]

    actions = [e["action"] for e in cli.json("log")]
    assert actions[:6] == ["restore", "forget", "supersede", "add", "edit", "add"]
    per_memory = cli.json("log", "--memory", mid)
    assert [e["action"] for e in per_memory] == ["supersede", "edit", "add"]
    assert per_memory[1]["detail"] == {
        "old": "Tests run with pytest -x",
        "new": "Tests run with make test",
    }
    assert "supersede" in cli("log").stdout


def test_restore_refuses_to_duplicate_an_active_fact(cli: Cli) -> None:
    mid = cli("add", "same fact").stdout.strip()
    cli("forget", mid)
    cli("add", "same fact")
    assert (
        "already" in cli.fail("restore", mid).stderr or "active" in cli.fail("restore", mid).stderr
    )


def test_edit_to_duplicate_is_refused(cli: Cli) -> None:
    cli("add", "alpha fact")
    b = cli("add", "beta fact").stdout.strip()
    assert "already memory" in cli.fail("edit", b, "Alpha fact.").stderr


def test_search_ranks_by_bm25(cli: Cli) -> None:
    cli("add", "The staging database is Postgres 16 on port 5433")
    cli("add", "Use pnpm for installing packages")
    cli("add", "Postgres connection pooling goes through pgbouncer on staging")
    cli("add", "Unrelated fact about coffee")
    hits = cli.json("search", "staging postgres port")
    assert hits[0]["content"] == "The staging database is Postgres 16 on port 5433"
    assert len(hits) == 2 and hits[0]["score"] >= hits[1]["score"]
    # FTS syntax in a user's query is just words.
    assert cli.json("search", 'pnpm -"packages" OR:')[0]["content"].startswith("Use pnpm")
    assert cli.json("search", "???") == []
    assert "no matches" in cli("search", "kubernetes").stderr


def test_stats(cli: Cli) -> None:
    cli("add", "a", "--kind", "gotcha")
    b = cli("add", "b", "--scope", "/x/y").stdout.strip()
    cli("forget", b)
    data = cli.json("stats")
    assert data["memories"] == 2
    assert data["by_status"] == {"active": 1, "forgotten": 1}
    assert data["by_kind"] == {"gotcha": 1}
    assert data["database"]["bytes"] > 0
    assert "memories" in cli("stats").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", ""], "empty"),
        (["add", "   \n\t "], "empty"),
        (["add", "x" * 4001], "4001 characters"),
        (["add", "ok", "--kind", "opinion"], "unknown kind"),
        (["add", "ok", "--scope", "relative/dir"], None),  # resolved to an absolute path
        (["show", "m-zzzzzzzz"], "no memory"),
        (["forget", "qqqq"], "no memory"),
    ],
)
def test_bad_input_one_line_error_and_nothing_changes(
    cli: Cli, args: list[str], message: str | None
) -> None:
    before = cli.json("list", "--all")
    if message is None:
        cli(*args)
        return
    result = cli.fail(*args)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert message in result.stderr
    assert cli.json("list", "--all") == before


def test_invalid_utf8_file_is_refused(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"caf\xe9 latte")
    assert "not valid UTF-8" in cli.fail("add", "--file", str(bad)).stderr
    assert "not valid UTF-8" in cli.fail("add", "-", input=b"\xff\xfe").stderr
    assert cli.json("list") == []
    good = tmp_path / "good.txt"
    good.write_text("Café runs on port 8080\n", encoding="utf-8")
    cli("add", "--file", str(good))
    assert cli.json("list")[0]["content"] == "Café runs on port 8080"


def test_scope_project_is_the_git_work_tree(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "src").mkdir()
    monkeypatch.chdir(repo / "src")
    data = cli.json("add", "src layout", "--scope", "project")
    assert data["scope"] == str(repo.resolve())


def test_first_hour_details(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """export -o is private whatever the umask; a scope that does not exist is allowed but
    warned about; `log` shows changes, and injections only when asked for."""
    import os

    from engram.store import memories
    from engram.store.db import Store

    missing = tmp_path / "does" / "not" / "exist"
    added = cli("add", "Deploys go through make release", "--scope", str(missing))
    assert "does not exist" in added.stderr
    mid = added.stdout.strip()
    monkeypatch.chdir(tmp_path)
    old = os.umask(0o022)
    try:
        cli("export", "-o", "out.jsonl")
    finally:
        os.umask(old)
    assert (tmp_path / "out.jsonl").stat().st_mode & 0o777 == 0o600
    with Store(cli.db).write() as session:
        memories.log_event(session, "inject", mid, "proxy", conversation="c1")
    assert [e["action"] for e in cli.json("log")] == ["add"]
    assert [e["action"] for e in cli.json("log", "--all")] == ["inject", "add"]
    assert [e["action"] for e in cli.json("log", "--action", "inject")] == ["inject"]
    assert "unknown action" in cli.fail("log", "--action", "bogus").stderr


def test_secrets_are_redacted_on_every_write_path(cli: Cli, tmp_path: Path) -> None:
    """add, edit, supersede and import store the redacted text and say so; the raw value
    is nowhere in the database file (events included)."""
    key = "sk-ant-api03-" + "Q7x9Lm2Pz4Rt8Vw1Yb6Nc3Kd5Hf0Js" * 3 + "-AbCdEfGh"
    password = "x9QmTuvKpaRbnW2z"  # once kept as a "type name" (three CamelCase words)
    added = cli("add", f"The staging key is {key}")
    assert "redacted" in added.stderr
    mid = added.stdout.strip()
    assert "[REDACTED:" in cli.json("show", mid)["content"]
    cli("edit", mid, f"Staging uses DB_PASSWORD={password} now")
    new = cli("supersede", mid, f"Prod uses {key} as well").stdout.strip()
    dump = tmp_path / "in.jsonl"
    dump.write_text('{"content": "import: token ' + key + '", "kind": "fact"}\n')
    cli("import", str(dump))
    for record in cli.json("list", "--all"):
        assert key not in record["content"] and password not in record["content"]
    assert new
    raw = cli.db.read_bytes() + (
        cli.db.with_name(cli.db.name + "-wal").read_bytes()
        if cli.db.with_name(cli.db.name + "-wal").exists()
        else b""
    )
    assert key.encode() not in raw and password.encode() not in raw
