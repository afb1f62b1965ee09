"""The analyzer end to end: journal rows -> a real SDK -> a loopback API -> memories."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Cli

from engram.store import memories
from engram.store.db import Store
from tests.support.journal import record_request
from tests.support.llm_stub import Delay, Empty, Fail, LLMStub, Reply

FAKE_KEY = "sk-ant-api03-Lk7pQ2wX9rT4vN8mB3hJ6fD1sA5gK0zC7xV2bN9mQ4wE8rT1yU6iO3pL5kJ8hG2fD4sA7zX"
PROJECT = "/home/dev/shop"


@pytest.fixture
def stub() -> Iterator[LLMStub]:
    with LLMStub() as server:
        yield server


def capture(
    store: Store, key: str, conversation: str, texts: list[str], project: str = PROJECT
) -> None:
    messages = [{"role": "user", "content": t} for t in texts]
    record_request(store, key, messages, reply="Understood.", project=project, session=conversation)


def env(stub: LLMStub, **extra: str) -> dict[str, str]:
    return {
        "ANTHROPIC_API_KEY": FAKE_KEY,
        "ENGRAM_ANALYZER_BASE_URL": stub.url,
        "ENGRAM_ANALYZER_RETRIES": "0",
        **extra,
    }


def analyze(cli: Cli, stub: LLMStub, *args: str, ok: bool = True, **extra: str):
    """The run's JSON report when it should succeed; the failed result (exit 1) if not."""
    if not ok:
        result = cli("analyze", "--analyzer", "anthropic", *args, ok=False, env=env(stub, **extra))
        assert result.exit_code == 1, result.stdout
        return result
    result = cli("analyze", "--analyzer", "anthropic", "--json", *args, env=env(stub, **extra))
    return json.loads(result.stdout)


def statuses(db: Path) -> list[tuple[str, int]]:
    conn = sqlite3.connect(db)
    out = conn.execute("SELECT status, attempts FROM exchanges ORDER BY id").fetchall()
    conn.close()
    return out


def test_good_output_is_stored_with_provenance_and_cost(
    cli: Cli, stub: LLMStub, store: Store, db_path: Path
) -> None:
    capture(store, "a", "c1", ["We use pnpm here, never npm."])
    capture(store, "b", "c1", ["We use pnpm here, never npm.", "I like short answers."])
    stub.script = Reply(
        text='engram add --kind preference --scope project "This project '
        'uses pnpm, never npm."\nengram add --kind preference --scope global '
        '"The user prefers short answers."'
    )
    report = analyze(cli, stub)
    assert report["exchanges"] == 2 and report["batches"] == 1
    assert report["input_tokens"] > 0 and report["cost_usd"] > 0
    stored = {m["content"]: m for m in cli.json("list")}
    pnpm = stored["This project uses pnpm, never npm."]
    assert pnpm["scope"] == PROJECT and pnpm["kind"] == "preference"
    assert pnpm["source"].startswith("analyzer:")
    assert sorted(pnpm["provenance"]) == ["x-1", "x-2"]
    assert stored["The user prefers short answers."]["scope"] == "global"
    assert statuses(db_path) == [("analyzed", 0), ("analyzed", 0)]
    # What the model was sent: engram's marker header, each user turn once.
    sent = stub.requests[-1]
    assert sent.header("X-Engram-Internal") == "1"
    text = json.dumps(sent.json)
    assert text.count("We use pnpm here, never npm.") == 1
    assert sent.json["system"][0]["cache_control"] == {"type": "ephemeral"}
    run = (
        sqlite3.connect(db_path)
        .execute("SELECT status, added, input_tokens, cost_usd FROM analyzer_runs")
        .fetchone()
    )
    assert run[0] == "ok" and run[1] == 2 and run[2] > 0 and run[3] > 0
    # Nothing pending: a second run calls nobody.
    calls = len(stub.requests)
    assert analyze(cli, stub)["batches"] == 0 and len(stub.requests) == calls


def test_analyzer_ignores_proxy_environment(cli: Cli, stub: LLMStub, store: Store) -> None:
    capture(store, "a", "c1", ["Remember that staging runs on port 5433."])
    stub.script = Reply(text='engram add "Staging runs on port 5433."')
    report = analyze(
        cli,
        stub,
        HTTPS_PROXY="http://127.0.0.1:9",
        HTTP_PROXY="http://127.0.0.1:9",
        ALL_PROXY="http://127.0.0.1:9",
    )
    assert len(report["added"]) == 1


def test_malformed_lines_ids_not_offered_and_secrets(cli: Cli, stub: LLMStub, store: Store) -> None:
    capture(store, "a", "c1", ["Deploys go through make release."])
    stub.script = Reply(
        text="\n".join(
            [
                "Here is what I found:",
                'engram add --kind procedure "Deploys go through \\"make release\\"."',
                'engram add "unterminated',
                'engram supersede m-zzzzzzzz "not offered"',
                "engram forget m-abcdefgh",
                'engram add "The API key is sk-ant-api03-Qw8eR4tY7uI0oP3aS6dF9gH2jK5lZ8x'
                'C1vB4nM7qW0eR3tY6uI9oP2aS5dF8gH1jK4"',
            ]
        )
    )
    report = analyze(cli, stub)
    assert [m["content"] for m in report["added"]] == ['Deploys go through "make release".']
    assert report["ignored"] >= 1
    reasons = " ".join(report["rejected"])
    assert "not among the candidates" in reasons and "secret" in reasons
    assert len(report["rejected"]) >= 4
    assert all("sk-ant" not in m["content"] for m in cli.json("list"))


def test_supersede_and_forget_candidates(cli: Cli, stub: LLMStub, store: Store) -> None:
    with store.write() as session:
        old = memories.add(
            session, "The staging database listens on port 5432", scope=PROJECT
        ).memory.id
        gone = memories.add(session, "The staging database is MySQL", scope=PROJECT).memory.id
    capture(store, "a", "c1", ["No, the staging database is Postgres on port 5433 now."])
    stub.script = Reply(
        text=f'engram supersede {old} "The staging database listens on port '
        f'5433"\nengram forget {gone}'
    )
    report = analyze(cli, stub)
    assert report["superseded"][0]["old"] == old and report["forgotten"] == [gone]
    # Both were shown to the model as candidates, with their ids.
    prompt_text = json.dumps(stub.requests[-1].json)
    assert old in prompt_text and gone in prompt_text
    active = [m["content"] for m in cli.json("list")]
    assert active == ["The staging database listens on port 5433"]
    assert cli.json("show", old)["superseded_by"] == report["superseded"][0]["new"]


def test_duplicates_fold_into_the_existing_memory(cli: Cli, stub: LLMStub, store: Store) -> None:
    with store.write() as session:
        mid = memories.add(session, "Use pnpm, not npm.", scope=PROJECT).memory.id
    capture(store, "a", "c1", ["Use pnpm, not npm."])
    stub.script = Reply(text='engram add --scope project "use pnpm, not npm"')
    report = analyze(cli, stub)
    assert report["duplicates"] == 1 and report["added"] == []
    assert cli.json("show", mid)["provenance"] == ["x-1"]


def test_429_then_success(cli: Cli, stub: LLMStub, store: Store) -> None:
    capture(store, "a", "c1", ["Remember: run make lint before pushing."])
    stub.script = [
        Fail(429, headers={"retry-after": "0"}),
        Reply(text='engram add --kind procedure "Run make lint before pushing."'),
    ]
    report = analyze(cli, stub, ENGRAM_ANALYZER_RETRIES="2")
    assert len(report["added"]) == 1 and report["failed_batches"] == 0
    assert len(stub.requests) == 2


def test_500_forever_keeps_the_batch_then_parks_it(
    cli: Cli, stub: LLMStub, store: Store, db_path: Path
) -> None:
    capture(store, "a", "c1", ["Remember that CI runs on Fridays."])
    stub.script = Fail(500)
    for attempt in (1, 2):
        result = cli(
            "analyze",
            "--analyzer",
            "anthropic",
            ok=False,
            env=env(stub, ENGRAM_ANALYZER_MAX_ATTEMPTS="2"),
        )
        assert result.exit_code == 1 and "500" in result.stderr
        expected = "pending" if attempt == 1 else "failed"
        assert statuses(db_path) == [(expected, attempt)]
    failed = cli.json("journal", "--failed")
    assert failed[0]["status"] == "failed"
    # Fixed upstream: --retry re-queues the parked batch and it goes through.
    stub.script = Reply(text='engram add "CI runs on Fridays."')
    report = analyze(cli, stub, "--retry")
    assert len(report["added"]) == 1
    assert statuses(db_path) == [("analyzed", 0)]


def test_timeout_is_a_failure_not_a_loss(
    cli: Cli, stub: LLMStub, store: Store, db_path: Path
) -> None:
    capture(store, "a", "c1", ["Remember that the cache is Redis."])
    stub.script = Delay(3, then=Reply(text='engram add "The cache is Redis."'))
    result = analyze(cli, stub, ok=False, ENGRAM_ANALYZER_TIMEOUT="0.5")
    assert "timed out" in result.stderr
    assert statuses(db_path) == [("pending", 1)]


def test_empty_answer_is_a_failure(cli: Cli, stub: LLMStub, store: Store, db_path: Path) -> None:
    capture(store, "a", "c1", ["Remember that builds use Bazel."])
    stub.script = Empty()
    analyze(cli, stub, ok=False)
    assert statuses(db_path) == [("pending", 1)]
    stub.script = Reply(text="")
    result = analyze(cli, stub, ok=False)
    assert "empty answer" in result.stderr
    stub.script = Reply(text="I don't see anything durable here.")
    assert "unparseable" in analyze(cli, stub, ok=False).stderr
    stub.script = Reply(text="NONE")
    report = analyze(cli, stub)
    assert report["added"] == [] and statuses(db_path) == [("analyzed", 3)]


def test_wrong_key_one_message_batch_untouched(
    cli: Cli, stub: LLMStub, store: Store, db_path: Path
) -> None:
    capture(store, "a", "c1", ["Remember that deploys need VPN."])
    stub.script = Fail(401)
    result = cli("analyze", "--analyzer", "anthropic", ok=False, env=env(stub))
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "ANTHROPIC_API_KEY" in errors[0]
    assert statuses(db_path) == [("pending", 0)]  # a config problem costs no attempt


def test_dry_run_applies_nothing(cli: Cli, stub: LLMStub, store: Store, db_path: Path) -> None:
    capture(store, "a", "c1", ["Remember that logs live in /var/log/shop."])
    stub.script = Reply(text='engram add "Logs live in /var/log/shop."')
    result = cli("analyze", "--analyzer", "anthropic", "--dry-run", env=env(stub))
    assert "engram add" in result.stdout and "Logs live in /var/log/shop." in result.stdout
    assert cli.json("list") == [] and statuses(db_path) == [("pending", 0)]


def test_budget_splits_batches_never_truncates(
    cli: Cli, stub: LLMStub, store: Store, db_path: Path
) -> None:
    for i in range(6):
        capture(store, f"k{i}", f"conv{i}", [f"Remember fact number {i}. " + "filler " * 400])
    stub.script = lambda req: Reply(text="NONE")
    report = analyze(cli, stub, ENGRAM_ANALYZER_INPUT_BUDGET_TOKENS="1500")
    assert report["batches"] >= 3 and report["exchanges"] == 6
    sent = " ".join(json.dumps(r.json) for r in stub.requests)
    for i in range(6):
        assert f"Remember fact number {i}." in sent
    assert all(s == "analyzed" for s, _ in statuses(db_path))


def test_openai_compatible_backend(cli: Cli, stub: LLMStub, store: Store) -> None:
    capture(store, "a", "c1", ["Remember that the docs are built with mkdocs."])
    stub.script = Reply(text='engram add --kind procedure "Build the docs with mkdocs."')
    result = cli(
        "analyze",
        "--analyzer",
        "openai",
        "--json",
        env={
            "ENGRAM_ANALYZER_OPENAI_BASE_URL": stub.url + "/v1",
            "ENGRAM_ANALYZER_OPENAI_MODEL": "qwen2.5-coder",
            "ENGRAM_ANALYZER_RETRIES": "0",
        },
    )
    report = json.loads(result.stdout)
    assert [m["content"] for m in report["added"]] == ["Build the docs with mkdocs."]
    assert report["added"][0]["source"] == "analyzer:qwen2.5-coder"
    assert stub.requests[-1].path.endswith("/chat/completions")
    assert stub.requests[-1].header("X-Engram-Internal") == "1"


def test_stats_show_tokens_and_cost_per_day_and_project(
    cli: Cli, stub: LLMStub, store: Store
) -> None:
    capture(store, "a", "c1", ["Remember that the queue is RabbitMQ."])
    capture(store, "b", "c2", ["Remember that the API is Flask."], project="/srv/api")
    stub.script = Reply(text='engram add "A fact."', usage=(1000, 50))
    analyze(cli, stub)
    data = cli.json("stats")
    total = data["analyzer"]["total"]
    assert total["runs"] == 2 and total["input_tokens"] >= 2000 and total["cost_usd"] > 0
    assert {r["project"] for r in data["analyzer"]["per_project"]} == {PROJECT, "/srv/api"}
    assert len(data["analyzer"]["per_day"]) == 1
    assert data["journal"] == {"analyzed": 2}
    assert "cost (USD)" in cli("stats").stdout
