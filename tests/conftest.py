"""Shared fixtures: an isolated home, config and database for every test.

Each test gets its own HOME and XDG directories so nothing reads or writes the
developer's real ~/.config/engram or ~/.local/share/engram.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from engram.cli.app import app

# The suite starts hundreds of Python processes (engram commands, mitmweb and mitmdump
# with engram's addon, MCP servers, the xdist workers). With bytecode caching off
# (PYTHONDONTWRITEBYTECODE=1 on some machines; uv installs no .pyc files) each of them
# compiles every module it imports from source: a mitmweb start measured 4.0 s of CPU
# without caches, 1.65 s with them; an `engram mcp` session 3.9 s and 1.7 s. The caches
# go to __pycache__ (git-ignored) and are rebuilt whenever a source file changes.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False


def isolate(monkeypatch: pytest.MonkeyPatch, home: Path) -> Path:
    """Point HOME and the XDG directories at `home` and drop engram's settings from the
    environment (also for fixtures wider than one test, which start before this one's)."""
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local/share"))
    for var in list(os.environ):
        if var.startswith(("ENGRAM_", "MUNINN_")) or var in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY"):
            monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    return isolate(monkeypatch, tmp_path_factory.mktemp("home"))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "engram.db"


@dataclass
class Cli:
    """Runs `engram` in-process through typer's runner against one database."""

    db: Path
    runner: CliRunner

    def __call__(
        self,
        *args: str,
        input: str | bytes | None = None,
        ok: bool = True,
        env: dict[str, str] | None = None,
    ) -> Result:
        result = self.runner.invoke(
            app, ["--db", str(self.db), *args], input=input, env=env, catch_exceptions=False
        )
        if ok:
            assert result.exit_code == 0, (
                f"engram {' '.join(args)} exited {result.exit_code}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    def json(self, *args: str, **kw: Any) -> Any:
        return json.loads(self(*args, "--json", **kw).stdout)

    def fail(self, *args: str, input: str | bytes | None = None) -> Result:
        result = self(*args, input=input, ok=False)
        assert result.exit_code != 0, f"expected failure, got: {result.stdout}"
        return result


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty database at the schema's head, made once per worker: reads never create a
    database, so the `cli` fixture starts from a copy of this (cheaper than migrating)."""
    from engram.store.db import Store

    path = tmp_path_factory.mktemp("template") / "engram.db"
    store = Store(path)
    store.ensure()
    store.close()
    return path


@pytest.fixture
def cli(db_path: Path, template_db: Path) -> Cli:
    """The CLI against this test's database, which exists (empty) from the start."""
    import shutil

    if not db_path.exists():
        shutil.copyfile(template_db, db_path)
        db_path.chmod(0o600)
    return Cli(db_path, CliRunner())


ENGRAM = [sys.executable, "-m", "engram"]


def run_engram(
    *args: str, env: dict[str, str] | None = None, input: bytes | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    """The real command in a subprocess, as a user's shell would run it."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [*ENGRAM, *args],
        env=full_env,
        input=input,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def store(db_path: Path) -> Iterator[Any]:
    from engram.store.db import Store

    s = Store(db_path)
    yield s
    s.close()


@pytest.fixture
def proxied(store: Any) -> Iterator[Any]:
    """`proxied(upstream, recall=None, **settings) -> (proxy, url)`: an in-process proxy
    journaling into `store` (tests/support/proxied.py)."""
    from tests.support.proxied import Proxies

    proxies = Proxies(store)
    yield proxies
    proxies.stop()


# -- engram ui: a seeded store and the server on it, shared by a test module ------------


@pytest.fixture(scope="module")
def ui_seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A store filled through engram's write paths (tests/support/ui_seed.py)."""
    from engram.store.db import Store
    from tests.support import ui_seed

    db = tmp_path_factory.mktemp("ui") / "engram.db"
    store = Store(db)
    data = ui_seed.small(store)
    store.close()
    return db, data


@pytest.fixture(scope="module")
def ui_server(
    ui_seeded: tuple[Path, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """`engram ui` (a subprocess on a free loopback port) over `ui_seeded`."""
    from tests.support.ui_server import UiServer

    with UiServer(ui_seeded[0], tmp_path_factory.mktemp("home")) as running:
        yield running


# -- mitmweb with engram's addon, shared by a test module --------------------------------


@pytest.fixture(scope="module")
def shared_mitmweb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One real mitmweb (engram's addon loaded) for a module: a start costs ~2-4 s of CPU.
    Its addon gets a home of its own, as under a test's isolated one."""
    from tests.support.mitmweb import Mitmweb

    with pytest.MonkeyPatch.context() as mp:
        isolate(mp, tmp_path_factory.mktemp("mitmweb-home"))
        m = Mitmweb().start()
    try:
        yield m
    finally:
        m.close()


@pytest.fixture
def mitm(shared_mitmweb: Any) -> Any:
    """The module's mitmweb, emptied (`POST /clear`): a test sees only its own flows."""
    if shared_mitmweb.proc is None or shared_mitmweb.proc.poll() is not None:
        shared_mitmweb.start()  # a test that failed mid-restart left it down
    shared_mitmweb.clear()
    return shared_mitmweb
