"""`engram prime` and the Claude Code SessionStart hook."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Cli


def test_prime_orders_by_importance_within_budget(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "shop"
    (repo / ".git").mkdir(parents=True)
    monkeypatch.chdir(repo)
    cli("add", "The API listens on port 8080", "--scope", "project")
    cli("add", "Use pnpm, never npm", "--kind", "preference", "--scope", "project")
    cli("add", "I like terse answers", "--kind", "preference")
    cli("add", "Other project fact", "--scope", "/srv/elsewhere")
    for i in range(5):
        cli(
            "add",
            f"Deployment step {i}: run the migration script, then restart the worker "
            "pool and watch the error rate dashboard for ten minutes",
            "--scope",
            "project",
        )
    out = cli("prime").stdout
    assert out.startswith("# Notes from earlier sessions (engram)")
    assert "may be outdated" in out
    project_part, global_part = out.split("## About the user")
    assert project_part.index("Use pnpm") < project_part.index("port 8080")
    assert "I like terse answers" in global_part and "Other project" not in out
    small = cli("prime", "--budget", "100").stdout
    assert small.count("\n- ") < out.count("\n- ")


def test_prime_prints_nothing_without_memories(cli: Cli) -> None:
    assert cli("prime").stdout == ""


def test_hooks_install_merges_is_idempotent_and_uninstalls_exactly(
    cli: Cli, isolated_home: Path
) -> None:
    settings = isolated_home / ".claude" / "settings.json"
    settings.parent.mkdir(parents=True)
    original = {
        "model": "opus",
        "hooks": {
            "SessionStart": [
                {"matcher": "", "hooks": [{"type": "command", "command": "echo mine"}]}
            ],
            "Stop": [{"hooks": [{"type": "command", "command": "say done"}]}],
        },
    }
    settings.write_text(json.dumps(original))
    assert "installed" in cli("hooks", "install", "claude").stdout
    assert "already installed" in cli("hooks", "install", "claude", "--user").stdout
    data = json.loads(settings.read_text())
    commands = [h["command"] for g in data["hooks"]["SessionStart"] for h in g["hooks"]]
    assert commands[0] == "echo mine" and commands[1].endswith("prime --from-hook")
    assert len(commands) == 2 and data["model"] == "opus"
    assert "removed" in cli("hooks", "uninstall", "claude").stdout
    assert json.loads(settings.read_text()) == original
    assert "not installed" in cli("hooks", "uninstall", "claude").stdout


def test_project_hook_and_bad_settings(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cli("hooks", "install", "claude", "--project")
    path = tmp_path / ".claude" / "settings.json"
    assert "prime --from-hook" in path.read_text()
    path.write_text("{not json")
    assert "not valid JSON" in cli.fail("hooks", "install", "claude", "--project").stderr
    assert path.read_text() == "{not json"
    assert "claude only" in cli.fail("hooks", "install", "codex").stderr


def test_hook_mode_reads_cwd_and_never_fails(tmp_path: Path) -> None:
    repo = tmp_path / "app"
    (repo / ".git").mkdir(parents=True)
    env_db = {"ENGRAM_DB": str(tmp_path / "e.db")}
    import os

    env = {**os.environ, **env_db}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "engram",
            "add",
            "Run make check before commits",
            "--scope",
            str(repo),
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    done = subprocess.run(
        [sys.executable, "-m", "engram", "prime", "--from-hook"],
        env=env,
        input=json.dumps({"cwd": str(repo / "sub"), "source": "startup"}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "make check" in done.stdout
    broken = {**env, "ENGRAM_DB": str(tmp_path / "not-a-dir" / "x.db")}
    (tmp_path / "not-a-dir").write_text("a file")
    done = subprocess.run(
        [sys.executable, "-m", "engram", "prime", "--from-hook"],
        env=broken,
        input="{}",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout == ""  # a session start is never blocked


def test_project_hook_is_portable_and_uninstall_leaves_nothing(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A project's settings are shared: the hook resolves engram through PATH and is a
    no-op (exit 0, no output) on a teammate's machine without engram."""
    monkeypatch.chdir(tmp_path)
    cli("hooks", "install", "claude", "--project")
    path = tmp_path / ".claude" / "settings.json"
    (hook,) = json.loads(path.read_text())["hooks"]["SessionStart"][0]["hooks"]
    assert hook["command"].startswith("engram prime --from-hook")
    assert sys.executable not in hook["command"]
    # On a machine where engram is not on PATH, through a shell as Claude Code runs it.
    bare = subprocess.run(
        ["/bin/sh", "-c", hook["command"]],
        env={"PATH": "/nonexistent"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bare.returncode == 0 and bare.stdout == "" and bare.stderr == ""
    assert "removed" in cli("hooks", "uninstall", "claude", "--project").stdout
    assert not path.exists() and not path.parent.exists()
