"""The recall query: the user's latest words, not harness text, tool output or our block."""

from __future__ import annotations

from engram.recall.query import MAX_QUERY_CHARS, QueryCache, query_from_turns
from engram.wire.block import wrap_block
from engram.wire.model import ToolCall, ToolResult, Turn

REMINDER = (
    "<system-reminder>\nThe user's todo list is empty. Do not mention this.\n</system-reminder>"
)


def test_latest_real_user_turn_without_harness_text() -> None:
    turns = [
        Turn("user", "set up the project"),
        Turn("assistant", "Done."),
        Turn("user", f"{REMINDER}\nwhy do the integration tests fail with connection refused?"),
    ]
    assert query_from_turns(turns) == "why do the integration tests fail with connection refused?"
    block = wrap_block("- [m-1] an old note about ports")
    turns[-1] = Turn("user", f"{block}\n\nwhich port does postgres use here")
    assert query_from_turns(turns) == "which port does postgres use here"


def test_tool_loops_keep_the_query_of_the_user_turn_that_started_them() -> None:
    start = [Turn("user", "run the migrations and fix what breaks")]
    loop = [
        *start,
        Turn("assistant", "", tool_calls=(ToolCall("t1", "bash", '{"cmd": "make migrate"}'),)),
        Turn("user", "", tool_results=(ToolResult("t1", "alembic: enum type error"),)),
        Turn("assistant", "", tool_calls=(ToolCall("t2", "bash", '{"cmd": "cat x"}'),)),
        Turn("tool", "file contents"),  # OpenAI's role for tool output
        Turn("user", REMINDER, tool_results=(ToolResult("t2", "more output"),)),
    ]
    assert (
        query_from_turns(loop)
        == query_from_turns(start)
        == ("run the migrations and fix what breaks")
    )


def test_harness_preambles_are_not_requests() -> None:
    turns = [
        Turn("user", "# AGENTS.md instructions for /repo\n\nUse pnpm."),
        Turn("user", "<environment_context><cwd>/repo</cwd></environment_context>"),
        Turn("user", "add a dark mode toggle to settings"),
    ]
    assert query_from_turns(turns) == "add a dark mode toggle to settings"
    assert query_from_turns(turns[:2]) == ""


def test_very_short_turns_fall_back_to_the_previous_user_turn() -> None:
    turns = [
        Turn("user", "the storefront build fails on node 22"),
        Turn("assistant", "Sharp does not build on Node 22. Shall I pin Node 20 in .nvmrc?"),
        Turn("user", "yes do it"),
    ]
    assert query_from_turns(turns) == "the storefront build fails on node 22"
    more = [*turns, Turn("assistant", "Pinned."), Turn("user", "ok"), Turn("user", "go")]
    assert query_from_turns(more) == "the storefront build fails on node 22"
    # no earlier request: the assistant turn the confirmation answers
    alone = [Turn("assistant", "Shall I pin Node 20 in .nvmrc?"), Turn("user", "yes")]
    assert query_from_turns(alone) == "Shall I pin Node 20 in .nvmrc?"
    assert query_from_turns([Turn("user", "yes")]) == "yes"


def test_no_user_words_falls_back_to_the_last_turns() -> None:
    turns = [
        Turn("system", "You are a coding agent."),
        Turn("assistant", "I will look at the failing migration."),
        Turn("user", REMINDER),
    ]
    assert query_from_turns(turns) == "I will look at the failing migration."
    assert query_from_turns([]) == ""


def test_long_requests_keep_head_and_tail() -> None:
    text = "please look at this trace\n" + "x" * 10_000 + "\nwhy does the worker crash?"
    query = query_from_turns([Turn("user", text)])
    assert len(query) <= MAX_QUERY_CHARS + 3
    assert query.startswith("please look at this trace") and query.endswith("crash?")


def test_query_cache_per_conversation_with_eviction() -> None:
    cache = QueryCache(size=2)
    cache.put("a", ("/p", "q"), 1, "result-a")
    assert cache.get("a", ("/p", "q"), 1) == "result-a"
    assert cache.get("a", ("/p", "other"), 1) is None
    assert cache.get("a", ("/p", "q"), 2) is None  # memories changed since
    cache.put("b", ("/p", "q"), 1, "result-b")
    cache.get("a", ("/p", "q"), 1)  # a is now the most recent
    cache.put("c", ("/p", "q"), 1, "result-c")
    assert len(cache) == 2 and cache.get("b", ("/p", "q"), 1) is None
    assert cache.get("a", ("/p", "q"), 1) == "result-a"
