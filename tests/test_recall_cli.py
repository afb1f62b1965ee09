"""`engram recall`, `engram search --mode` and injections in `engram log`."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Cli

from engram.config import RecallConfig
from engram.recall.service import Recaller
from engram.store.db import Store

PROJECT = "/home/dev/work/shop-api"


def fill(cli: Cli) -> dict[str, str]:
    def add(text: str, scope: str, kind: str = "fact") -> str:
        return cli("add", text, "--scope", scope, "--kind", kind).stdout.strip()

    return {
        "tests": add(
            "The integration tests need `docker compose up -d db` first, else they "
            "fail with connection refused.",
            PROJECT,
            "gotcha",
        ),
        "port": add("The local Postgres listens on port 5433.", PROJECT),
        "other": add("ripgrab tests run with cargo nextest.", "/home/dev/src/ripgrab"),
        "pref": add("The user prefers short answers.", "global", "preference"),
    }


def test_recall_json_contract(cli: Cli) -> None:
    ids = fill(cli)
    out = cli.json(
        "recall", "the integration tests fail with connection refused", "--project", PROJECT
    )
    assert out["injected"] is True and isinstance(out["reason"], str)
    assert {"id", "content", "scope", "score", "injected"} <= set(out["candidates"][0])
    assert out["candidates"][0]["id"] == ids["tests"] and out["candidates"][0]["injected"]
    assert ids["other"] not in {c["id"] for c in out["candidates"]}
    assert ids["tests"] in out["block_text"] and out["scopes"][0] == PROJECT
    quiet = cli.json("recall", "write a haiku about autumn", "--project", PROJECT)
    assert quiet["injected"] is False and "min_score" in quiet["reason"]
    assert not any(c["injected"] for c in quiet["candidates"])
    only_global = cli.json("recall", "integration tests connection refused", "--project", "global")
    assert {c["scope"] for c in only_global["candidates"]} <= {"global"}
    from_stdin = cli.json("recall", "-", "--project", PROJECT, input="which port is postgres on?")
    assert from_stdin["query"] == "which port is postgres on?"


def test_recall_table_shows_verdicts_and_block(cli: Cli) -> None:
    fill(cli)
    out = cli(
        "recall", "the integration tests fail with connection refused", "--project", PROJECT
    ).stdout
    assert out.startswith("inject:") and "the block the agent would get" in out
    assert "The integration tests need `docker compose up" in out
    out = cli("recall", "zzzz qqqq", "--project", PROJECT).stdout
    assert out.startswith("nothing to inject")


def test_search_modes_keep_the_json_fields(cli: Cli) -> None:
    ids = fill(cli)
    hybrid = cli.json("search", "database connection refused")
    assert hybrid[0]["id"] == ids["tests"] and 0 < hybrid[0]["score"] <= 1
    assert {"id", "content", "kind", "scope", "status", "score"} <= set(hybrid[0])
    semantic = cli.json("search", "postgres port", "--mode", "semantic")
    assert semantic[0]["id"] == ids["port"] and ids["other"] not in {h["id"] for h in semantic}
    assert all(h["score"] >= 0.2 for h in semantic)  # cosines; unrelated ones stay below
    assert cli.json("search", "kubernetes helm chart") == []  # nothing related: no list
    bm25 = cli.json("search", "cargo", "--mode", "bm25")
    assert [h["id"] for h in bm25] == [ids["other"]]
    scoped = cli.json("search", "tests", "--scope", PROJECT, "--kind", "gotcha")
    assert [h["id"] for h in scoped] == [ids["tests"]]
    assert "no matches" in cli("search", "zzzz", "--mode", "bm25").stderr
    assert "--mode must be" in cli.fail("search", "x", "--mode", "fuzzy").stderr


def test_injections_show_in_engram_log(cli: Cli) -> None:
    ids = fill(cli)
    store = Store(cli.db)
    recaller = Recaller(store, RecallConfig(), background=False)
    result = recaller.recall(
        "the integration tests fail with connection refused", PROJECT, conversation="conv-42"
    )
    assert recaller.log_injection(result, "conv-42") >= 1
    recaller.close()
    store.close()
    events = cli.json("log", "--memory", ids["tests"], "--all")
    inject = next(e for e in events if e["action"] == "inject")
    assert inject["actor"] == "recall" and inject["detail"]["conversation"] == "conv-42"
    assert "connection refused" in inject["detail"]["query"]
    assert cli.json("show", ids["tests"])["use_count"] == 1
    assert "inject" not in cli("log").stdout  # changes only, unless asked for
    assert "inject" in cli("log", "--all").stdout


@pytest.mark.parametrize("flags", [("--kind", "preference", "--scope", "project"), ()])
def test_readme_example_search_finds_the_paraphrase(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flags: tuple[str, ...]
) -> None:
    """README: `engram add "We use pnpm, never npm, in this repo" --scope project`, then
    `engram search "package manager"` finds it, and recall injects it for the question
    and for "How do I install dependencies here?" (no word in common: the gate's
    `tool_kind` evidence), with the default embedder; a thank-you gets nothing."""
    repo = tmp_path / "shop"
    (repo / ".git").mkdir(parents=True)
    monkeypatch.chdir(repo)
    mid = cli("add", "We use pnpm, never npm, in this repo", *flags).stdout.strip()
    cli("add", "I prefer small commits with imperative subjects", "--kind", "preference")
    found = cli.json("search", "package manager")
    assert found and found[0]["id"] == mid
    for question in ("which package manager do we use?", "How do I install dependencies here?"):
        out = cli.json("recall", question)
        assert out["injected"] and out["candidates"][0]["id"] == mid, (question, out["reason"])
    assert not cli.json("recall", "thanks, that worked!")["injected"]
    assert "reindex" in cli("recall", "--help").stdout  # the group lists its commands
    assert cli.json("recall", "query", "reindex")["query"] == "reindex"  # the word itself


def test_fts_syntax_in_the_request_is_just_words(cli: Cli) -> None:
    """Quotes, `*`, `:`, `-`, parentheses and FTS5 operators in a request are words, never
    query syntax: every search mode and recall answers (no "fts5: syntax error")."""
    mid = cli("add", "Run the API with `make dev` (port 8001)", "--scope", PROJECT).stdout.strip()
    nasty = [
        'say "hi', "*", "make:dev", "-port", "(make dev", "NEAR(make dev)", "make AND NOT dev",
        "port^2 + {dev}", "'; drop table memories; --",
    ]  # fmt: skip
    for text in nasty:
        for mode in ("hybrid", "semantic", "bm25"):
            cli("search", "--mode", mode, "--", text)
        cli.json("recall", "-", "--project", PROJECT, input=text)
    assert cli.json("search", '"make dev" (port)', "--mode", "bm25")[0]["id"] == mid
