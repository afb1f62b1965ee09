"""Validation at formation: what a proposed memory must be to be kept, and folding
restatements into the memory that already says them (with the real recall embedder)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Cli
from test_analyzer_runner import PROJECT, analyze, capture

from engram.analyzer import validate
from engram.recall.embedder import WordLlamaEmbedder
from engram.store import memories
from engram.store.db import Store
from tests.support.llm_stub import LLMStub, Reply

CONVERSATION = [
    {"role": "user", "text": "what's our go version"},
    {"role": "assistant", "text": "I assume Go 1.21, since that's the most common."},
    {"role": "user", "text": "wrong, go.mod says 1.23 and we use the new iterator funcs"},
    {"role": "assistant", "text": "Right, Go 1.23. Updated the CI image."},
    {
        "role": "tool",
        "text": "",
        "tool_results": [{"call_id": "c1", "content": "===== 88 passed in 12.4s =====\n"}],
    },
]
SAID = validate.batch_text([{"project": PROJECT, "turns": CONVERSATION}])


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("Does the endpoint need auth?", "a question"),
        ("Understood, plain commit messages from now on.", "chatter"),
        ("No, thanks for that.", "chatter"),
        ("Updated the CI image to the new Go version.", "report of this session"),
        ("All 88 tests pass on the CI image.", "report of this session"),
        ("88 passed in 12.4s", "tool output"),
        ("The flaky test is failing right now.", "transient"),
        ("It uses the new iterator funcs.", "not self-contained"),
        ("The project targets Go 1.24 and later.", "never mentions"),
        ("The project uses Go 1.21 for the iterator funcs.", "guess"),
        ("Maybe the CI image should pin Go.", "speculation"),
    ],
)
def test_junk_is_rejected_with_its_reason(text: str, why: str) -> None:
    verdict = validate.judge_text(text, SAID, strict=False)
    assert verdict.decision == "reject" and why in verdict.reason, verdict


def test_a_fact_the_user_stated_is_kept() -> None:
    assert (
        validate.judge_text("The project uses Go 1.23 (go.mod)", SAID, strict=False).decision
        == "keep"
    )


def test_a_fact_with_no_word_of_its_own_folds_unless_it_negates() -> None:
    near = validate.NearDuplicates(WordLlamaEmbedder())
    existing = [
        validate.Existing("m-bbbbbbbb", "Logs go through the slog package with JSON output.")
    ]
    fold = near.find("We use slog, like the rest of the code.", existing)
    assert fold is not None and fold.target == "m-bbbbbbbb"
    assert near.find("We never use slog.", existing) is None
    assert near.find("Never use slog in hot loops.", existing) is None


def test_a_restatement_in_other_inflections_folds() -> None:
    from engram.recall.onnx_embedder import OnnxEmbedder

    near = validate.NearDuplicates(OnnxEmbedder())
    old = validate.Existing("m-cccccccc", "Errors are wrapped with fmt.Errorf and %w.")
    fold = near.find("Wrap errors using fmt.Errorf with %w.", [old])
    assert fold is not None and fold.target == "m-cccccccc"


def test_a_rule_that_opens_with_no_is_not_a_reply() -> None:
    said = validate.batch_text([{"turns": [{"role": "user", "text": "no emojis. ever."}]}])
    assert validate.judge_text("No emojis, ever.", said, strict=False).decision == "keep"


def test_not_just_today_widens_a_rule_instead_of_limiting_it() -> None:
    said = validate.batch_text(
        [{"turns": [{"role": "user", "text": "I always want short answers, not just today"}]}]
    )
    text = "I always want short answers, not just today."
    assert validate.judge_text(text, said, strict=False).decision == "keep"
    assert (
        "transient" in validate.judge_text("Keep answers short today.", said, strict=False).reason
    )


def test_strict_validation_rejects_what_the_conversation_never_said() -> None:
    text = "Always write commit messages in the imperative mood"  # a prompt example, copied
    assert validate.judge_text(text, SAID, strict=False).decision == "keep"
    assert "never used" in validate.judge_text(text, SAID, strict=True).reason


PLANNED = [
    {"role": "user", "text": "the pi only has python 3.9. can you add a chart page?"},
    {"role": "assistant", "text": "I'll add a /chart page with the last 24 hours of readings."},
    {"role": "user", "text": "ok"},
    {"role": "assistant", "text": "The supplier sends files in cp1252, not utf-8."},
    {"role": "user", "text": "ah yes, right"},
    {"role": "assistant", "text": "A retry with backoff might fix the flaky upload."},
]


@pytest.mark.parametrize(
    ("text", "decision"),
    [
        ("The Raspberry Pi only has Python 3.9", "keep"),  # the user's, paraphrased
        ("The supplier sends its files in cp1252", "keep"),  # said by the assistant, affirmed
        ("The chart page reads the last 24 hours of readings", "reject"),  # the agent's plan
        ("A retry with backoff fixes the flaky upload", "reject"),  # never affirmed
    ],
)
def test_strict_validation_keeps_only_what_the_user_said_or_affirmed(
    text: str, decision: str
) -> None:
    said = validate.batch_text([{"project": PROJECT, "turns": PLANNED}])
    verdict = validate.judge_text(text, said, strict=True)
    assert verdict.decision == decision, verdict
    assert validate.judge_text(text, said, strict=False).decision == "keep"


def test_restatements_fold_but_updates_do_not() -> None:
    near = validate.NearDuplicates(WordLlamaEmbedder())
    existing = [validate.Existing("m-aaaaaaaa", "The metrics service listens on port 9102.")]
    fold = near.find("Note: The metrics service listens on port 9102.", existing)
    assert fold is not None and fold.decision == "fold" and fold.target == "m-aaaaaaaa"
    assert near.find("The metrics service listens on port 9103.", existing) is None
    assert near.find("Benchmarks are compared with benchstat.", existing) is None


@pytest.fixture
def stub() -> Iterator[LLMStub]:
    with LLMStub() as server:
        yield server


def test_dry_run_shows_each_decision_and_the_run_folds(
    cli: Cli, stub: LLMStub, store: Store, db_path: Path
) -> None:
    with store.write() as session:
        old = memories.add(session, "This project uses pnpm, never npm.", scope=PROJECT).memory
    capture(store, "a", "c1", ["No, we use pnpm here, never npm. Deploys go through make ship."])
    stub.script = Reply(
        text="\n".join(
            [
                'engram add --kind preference --scope project "We use pnpm here, never npm."',
                'engram add --kind procedure --scope project "Deploys go through make ship."',
                'engram add --kind fact --scope project "Should deploys use make ship?"',
            ]
        )
    )
    dry = analyze(cli, stub, "--dry-run")
    decisions = [(d["decision"], d["target"]) for d in dry["decisions"]]
    assert decisions == [("fold", old.id), ("keep", None), ("reject", None)]
    assert "question" in dry["decisions"][2]["reason"]
    assert all("  # " in line for line in dry["proposed"])
    report = analyze(cli, stub)
    assert [m["content"] for m in report["added"]] == ["Deploys go through make ship."]
    assert report["duplicates"] == 1 and len(report["rejected"]) == 1
    conn = sqlite3.connect(db_path)
    provenance = conn.execute("SELECT provenance FROM memories WHERE id = ?", (old.id,)).fetchone()
    conn.close()
    assert json.loads(provenance[0])  # the folded restatement's exchange is recorded


@pytest.mark.parametrize(
    ("new", "old"),
    [
        ("Use pnpm for the web app", "Use npm for the web app"),
        ("We deploy staging on Fridays", "We deploy production on Fridays"),
        ("Never push directly to main", "Always push directly to main"),
        (
            "Images are built in CI and pushed to the staging registry after every merge.",
            "Images are built in CI and pushed to the production registry after every merge.",
        ),
        ("Deploys go through make ship on Fridays.", "Deploys go through make ship."),
        ("The web app uses pnpm workspaces.", "The web app uses pnpm."),
    ],
)
def test_a_swapped_term_a_flipped_rule_or_a_new_detail_is_never_folded_away(
    new: str, old: str
) -> None:
    """With the default embedder these pairs score 0.71-0.97: folding them would drop
    the new fact as "already stored". They are updates, other facts or more precise ones."""
    from engram.recall.onnx_embedder import OnnxEmbedder

    near = validate.NearDuplicates(OnnxEmbedder())
    assert near.find(new, [validate.Existing("m-aaaaaaaa", old)]) is None
