"""The installed command as a user's shell runs it: real processes, real exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_engram

from engram.store import schema


def test_add_list_search_in_subprocesses(tmp_path: Path) -> None:
    env = {"ENGRAM_DB": str(tmp_path / "e.db")}
    added = run_engram("add", "Use uv for virtualenvs", "--kind", "preference", env=env)
    assert added.returncode == 0, added.stderr
    mid = added.stdout.decode().strip()
    listed = run_engram("list", "--json", env=env)
    assert [r["id"] for r in json.loads(listed.stdout)] == [mid]
    found = run_engram("search", "virtualenvs", "--json", env=env)
    assert json.loads(found.stdout)[0]["id"] == mid
    piped = run_engram("add", "-", env=env, input=b"From a pipe\n")
    assert piped.returncode == 0
    assert "From a pipe" in run_engram("list", env=env).stdout.decode()


def test_errors_are_one_line_and_nonzero(tmp_path: Path) -> None:
    env = {"ENGRAM_DB": str(tmp_path / "e.db")}
    run_engram("add", "something", env=env)
    result = run_engram("show", "m-nothere", env=env)
    assert result.returncode == 1
    assert result.stderr.decode() == "error: no memory with id m-nothere\n"
    assert result.stdout == b""


def test_help_is_documentation(tmp_path: Path) -> None:
    result = run_engram("--help")
    text = result.stdout.decode()
    assert result.returncode == 0
    for command in (
        "add",
        "list",
        "show",
        "edit",
        "supersede",
        "forget",
        "restore",
        "search",
        "log",
        "stats",
        "export",
        "import",
        "db",
        "config",
    ):
        assert command in text


def test_db_commands(tmp_path: Path) -> None:
    env = {"ENGRAM_DB": str(tmp_path / "new.db")}
    assert "(empty)" in run_engram("db", "current", env=env).stdout.decode()
    assert f"-> {schema.HEAD}" in run_engram("db", "upgrade", env=env).stdout.decode()
    assert "already at" in run_engram("db", "upgrade", env=env).stdout.decode()
    assert (
        f"revision {schema.HEAD}; head {schema.HEAD}"
        in run_engram("db", "current", env=env).stdout.decode()
    )
