"""The analyzer prompt: a stable system prompt and a clean, bounded user message."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engram.analyzer import prompt
from engram.analyzer.grammar import parse_commands
from engram.analyzer.prompt import (
    PROMPT_VERSION,
    SYSTEM_PROMPT,
    CandidateMemory,
    ConversationInput,
    build_user_message,
    estimate_tokens,
    render_turn,
    trim_middle,
)
from engram.store.schema import KINDS
from engram.wire.block import wrap_block

DOC = Path(__file__).resolve().parent.parent / "docs" / "analyzer-prompt.md"

CANDIDATE = CandidateMemory("m-4k2p9xqa", "The API listens\non port 8000", "fact", "/home/ana/shop")

TURNS: list[dict[str, Any]] = [
    {"role": "system", "text": "You are Claude Code, a harness instruction."},
    {
        "role": "user",
        "text": (
            "<system-reminder>\nThe date is 2026-11-02. Harness context.\n</system-reminder>\n"
            "we use pnpm here, never npm\n\n"
            + wrap_block("- [preference] Notes from earlier sessions: use yarn")
        ),
    },
    {
        "role": "assistant",
        "text": "Switching to pnpm.",
        "tool_calls": [{"id": "c1", "name": "Bash", "arguments": '{"command": "pnpm test"}'}],
    },
    {
        "role": "user",
        "text": "",
        "tool_results": [
            {
                "call_id": "c1",
                "content": (
                    "FAIL cart.test.ts\n<system-reminder>file may be malicious</system-reminder>"
                ),
                "is_error": True,
            }
        ],
    },
    {"role": "tool", "text": "", "tool_results": [{"call_id": "c2", "content": "ok"}]},
    {"role": "assistant", "text": "The cart test needs `pnpm build` first."},
]


def message(**kw: Any) -> str:
    conversations = kw.get("conversations") or [
        ConversationInput("/home/ana/shop", "conv-1", TURNS)
    ]
    return build_user_message(conversations, kw.get("candidates", [CANDIDATE]))


# --- the system prompt ----------------------------------------------------------------------


def test_version_is_a_dated_counter() -> None:
    assert re.fullmatch(r"20\d\d-(0[1-9]|1[0-2])-[1-9]\d*", PROMPT_VERSION)


# Bump PROMPT_VERSION, then update these hashes, whenever the prompt or the message
# layout changes: answers and memories are recorded with the version that produced them.
PINNED = {
    "2026-11-1": ("82fb7b7230e3c094", "2b37d56c3ed745b4"),
}


def test_prompt_changes_come_with_a_version_bump() -> None:
    system_sha = hashlib.sha256(SYSTEM_PROMPT.encode()).hexdigest()[:16]
    message_sha = hashlib.sha256(message().encode()).hexdigest()[:16]
    assert PINNED.get(PROMPT_VERSION) == (system_sha, message_sha), (
        "the prompt changed: bump PROMPT_VERSION and pin the new hashes"
    )


def test_system_prompt_is_stable_and_has_no_timestamps() -> None:
    """Byte-identical in another process, at another time zone and hash seed."""
    code = "import sys; from engram.analyzer.prompt import SYSTEM_PROMPT as s; sys.stdout.write(s)"
    env = {**os.environ, "TZ": "Pacific/Kiritimati", "PYTHONHASHSEED": "123", "LANG": "C"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, check=True)
    assert out.stdout.decode("utf-8") == SYSTEM_PROMPT
    assert not re.search(r"\b20\d\d-\d\d-\d\d|\d\d:\d\d(:\d\d)?|\btoday\b", SYSTEM_PROMPT)
    assert "{" not in SYSTEM_PROMPT  # no template left unfilled


def test_system_prompt_is_small() -> None:
    assert estimate_tokens(SYSTEM_PROMPT) <= 1200


def test_system_prompt_covers_the_rules() -> None:
    text = SYSTEM_PROMPT
    for kind in KINDS:
        assert f"- {kind}:" in text
    for needle in [
        "engram add --kind KIND --scope SCOPE",
        "engram supersede ID",
        "engram forget ID",
        "NONE",
        "global:",
        "project:",
        "secrets",
        "<engram-memory>",
        "notes from earlier sessions",
        "task state",
        "speculation",
        "generic knowledge",
        "system prompt",
        "tool definitions",
        "already states",
        "not instructions",
    ]:
        assert needle in text, needle


def test_prompt_examples_parse_with_the_grammar() -> None:
    """The worked examples must be valid answers, or the model learns a broken form."""
    answers = re.findall(r"Answer:\n(.*?)(?:\n\n|\Z)", SYSTEM_PROMPT, re.DOTALL)
    assert len(answers) == 3
    parsed = [parse_commands(a) for a in answers]
    assert all(p.rejected == [] for p in parsed)
    assert [len(p.commands) for p in parsed] == [1, 2, 0]
    assert parsed[1].commands[0].target == "m-4k2p9xqa"
    assert all(c.kind for p in parsed for c in p.commands)


# --- the user message -----------------------------------------------------------------------


def test_message_renders_turns_in_order_without_harness_text() -> None:
    text = message()
    assert "system-reminder" not in text
    assert "engram-memory" not in text
    assert "use yarn" not in text
    assert "2026-11-02" not in text
    assert "harness instruction" not in text  # system turns are not shown
    order = [
        "## Conversation 1 of 1",
        "Project: /home/ana/shop",
        "USER: we use pnpm here, never npm",
        "ASSISTANT: Switching to pnpm.",
        'TOOL CALL Bash({"command": "pnpm test"})',
        "TOOL RESULT (error): FAIL cart.test.ts",
        "TOOL RESULT: ok",
        "ASSISTANT: The cart test needs `pnpm build` first.",
        "# Candidate memories",
        "m-4k2p9xqa [fact, /home/ana/shop] The API listens on port 8000",
    ]
    positions = [text.index(part) for part in order]
    assert positions == sorted(positions)


def test_message_is_deterministic() -> None:
    assert message() == message()
    assert build_user_message([], []) == build_user_message([], [])


def test_no_candidates_and_no_project() -> None:
    text = build_user_message([ConversationInput(None, "c", TURNS[:2])], [])
    assert "# Candidate memories\n(none)" in text
    assert "Project: unknown (use --scope global only)" in text
    empty = build_user_message([ConversationInput("/p", "c", [TURNS[0]])], [])
    assert "(no new turns with text)" in empty


def test_several_conversations_keep_their_order() -> None:
    convs = [
        ConversationInput("/p", "a", [{"role": "user", "text": "first"}]),
        ConversationInput("/p", "b", [{"role": "user", "text": "second"}]),
    ]
    text = build_user_message(convs, [])
    assert text.index("## Conversation 1 of 2") < text.index("USER: first")
    assert text.index("USER: first") < text.index("## Conversation 2 of 2")
    assert text.index("## Conversation 2 of 2") < text.index("USER: second")


def test_a_200kb_tool_result_is_trimmed_to_head_and_tail() -> None:
    content = "HEAD-START " + "x" * 100_000 + " MIDDLE-NEEDLE " + "y" * 100_000 + " TAIL-END"
    turn = {"role": "user", "text": "", "tool_results": [{"call_id": "c", "content": content}]}
    text = build_user_message([ConversationInput("/p", "c", [turn])], [])
    assert "HEAD-START" in text
    assert "TAIL-END" in text
    assert "MIDDLE-NEEDLE" not in text
    assert re.search(r"\[\.\.\. [\d,]+ characters trimmed \.\.\.\]", text)
    assert len(text) < 3000


def test_long_tool_arguments_and_texts_are_bounded() -> None:
    turn = {
        "role": "assistant",
        "text": "a" * 50_000,
        "tool_calls": [{"id": "1", "name": "Write", "arguments": "b" * 50_000}],
    }
    rendered = render_turn(turn)
    assert len(rendered) < prompt.TEXT_CHARS + prompt.TOOL_CALL_CHARS + 200
    assert len(render_turn(turn, tool_call_chars=100, text_chars=100)) < 400


@pytest.mark.parametrize(
    "turn",
    [
        {},
        {"role": "user"},
        {"role": "user", "text": None, "tool_calls": None, "tool_results": None},
        {"role": "assistant", "tool_calls": ["not a mapping"], "tool_results": [3]},
        {"role": "user", "text": "<system-reminder>only harness</system-reminder>"},
    ],
)
def test_empty_or_odd_turns_render_as_nothing(turn: dict[str, Any]) -> None:
    assert render_turn(turn) == ""


def test_unknown_roles_are_labelled() -> None:
    assert render_turn({"role": "developer", "text": "hi"}) == "DEVELOPER: hi"
    assert render_turn({"role": "tool", "text": "output"}) == "TOOL RESULT: output"


# --- budgets --------------------------------------------------------------------------------


def test_trim_middle_keeps_short_text() -> None:
    assert trim_middle("short", 10) == "short"
    assert trim_middle("exact", 5) == "exact"
    assert trim_middle("", 0) == ""


def test_trim_middle_marker_counts_what_went() -> None:
    out = trim_middle("a" * 10 + "b" * 12_345 + "c" * 10, 20)
    assert out == "a" * 10 + "\n[... 12,345 characters trimmed ...]\n" + "c" * 10


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=500), st.integers(min_value=-5, max_value=600))
def test_trim_middle_is_bounded(text: str, limit: int) -> None:
    out = trim_middle(text, limit)
    if len(text) <= limit:
        assert out == text
        return
    marker = f"\n[... {len(text) - max(limit, 0):,} characters trimmed ...]\n"
    assert marker in out
    assert len(out) <= max(limit, 0) + len(marker)
    head, _, tail = out.partition(marker)
    assert text.startswith(head)
    assert text.endswith(tail)


@settings(max_examples=300, deadline=None)
@given(st.text(), st.text())
def test_estimate_tokens_is_monotonic(a: str, b: str) -> None:
    assert estimate_tokens(a + b) >= estimate_tokens(a) >= 0
    assert estimate_tokens(a + b) <= estimate_tokens(a) + estimate_tokens(b) + 1


def test_estimate_tokens_values() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcdefg") == 2  # 7 bytes / 3.5
    assert estimate_tokens("日本語") == 3  # 9 bytes: CJK is not underestimated
    assert estimate_tokens("\ud800") == 1  # a lone surrogate does not raise


# --- the doc --------------------------------------------------------------------------------


def test_doc_names_the_current_version() -> None:
    doc = DOC.read_text(encoding="utf-8")
    assert f"`{PROMPT_VERSION}`" in doc
    assert "engram/analyzer/prompt.py" in doc


# --- the local backend's prompt -------------------------------------------------------------

LOCAL_PINNED = {"local-2026-12-1": "420692e6eda5c83d"}


def test_local_prompt_changes_come_with_a_version_bump() -> None:
    blob = prompt.LOCAL_SYSTEM_PROMPT + repr(prompt.LOCAL_EXAMPLES)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
    assert LOCAL_PINNED.get(prompt.LOCAL_PROMPT_VERSION) == digest, (
        "the local prompt changed: bump LOCAL_PROMPT_VERSION and pin the new hash"
    )


def test_local_examples_are_answers_the_parser_accepts() -> None:
    for _conversation, answer in prompt.LOCAL_EXAMPLES:
        parsed = parse_commands(answer)
        assert parsed.commands and not parsed.rejected and not parsed.ignored


def test_local_message_shows_the_candidates_and_little_tool_output() -> None:
    conv = ConversationInput("/home/ana/shop", "conv-1", TURNS)
    full = build_user_message([conv], [CANDIDATE])
    listed = prompt.listed_candidates(full)
    assert listed == [("m-4k2p9xqa", "The API listens on port 8000")]
    local = prompt.build_local_message([conv], listed)
    assert local.startswith("Project: /home/ana/shop\n\n")
    assert local.endswith("Already stored:\nm-4k2p9xqa The API listens on port 8000")
    assert "You are Claude Code" not in local  # harness turns never reach the model
    for line in local.splitlines():
        if line.startswith("TOOL RESULT"):
            assert len(line) <= prompt.LOCAL_TOOL_RESULT_CHARS + 80
    alone = prompt.build_local_message([conv], prompt.listed_candidates(message(candidates=[])))
    assert "Already stored" not in alone
