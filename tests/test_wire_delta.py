"""Conversation deltas: every turn reaches the analyzer exactly once."""

from __future__ import annotations

import json
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from engram.wire.block import wrap_block
from engram.wire.delta import compute_delta, turn_fingerprint
from engram.wire.model import ToolCall, ToolResult, Turn


def user(text: str) -> Turn:
    return Turn(role="user", text=text)


def assistant(text: str = "", *calls: ToolCall, thinking: str = "") -> Turn:
    return Turn(role="assistant", text=text, tool_calls=calls, thinking=thinking)


def tool(call_id: str, content: str) -> Turn:
    return Turn(role="tool", tool_results=(ToolResult(call_id=call_id, content=content),))


def call(call_id: str, name: str, **arguments: object) -> ToolCall:
    return ToolCall(id=call_id, name=name, arguments=json.dumps(arguments))


def echoed(turn: Turn) -> Turn:
    """The turn as an agent sends it back in its next request's history.

    Thinking cleared, tool arguments re-serialised by a JavaScript agent (keys in another
    order, pretty-printed, 10.0 written as 10), calls re-numbered, trailing whitespace.
    """
    calls = tuple(
        ToolCall(
            id=f"renumbered-{i}",
            name=c.name,
            arguments=json.dumps(
                {
                    k: int(v) if isinstance(v, float) and v.is_integer() else v
                    for k, v in reversed(json.loads(c.arguments).items())
                },
                indent=2,
            ),
        )
        for i, c in enumerate(turn.tool_calls)
    )
    text = "\n".join(line + "  " for line in turn.text.split("\n")) + "\n" if turn.text else ""
    return Turn(turn.role, text, calls, turn.tool_results, thinking="")


def fingerprints(turns: Sequence[Turn]) -> list[str]:
    return [turn_fingerprint(t) for t in turns]


class Conversation:
    """Feeds requests to compute_delta the way the analyzer would, collecting deltas."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}
        self.emitted: list[Turn] = []

    def request(self, history: Sequence[Turn], reply: Turn | None = None) -> list[Turn]:
        turns = [*history, *([reply] if reply else [])]
        delta, self.seen = compute_delta(self.seen, turns)
        self.emitted.extend(delta)
        return delta


# --- fingerprint -----------------------------------------------------------------------


def test_fingerprint_is_a_short_stable_hex_hash() -> None:
    fp = turn_fingerprint(user("hello"))
    assert len(fp) == 32 and int(fp, 16) >= 0
    assert fp == turn_fingerprint(user("hello"))
    assert fp != turn_fingerprint(assistant("hello"))
    assert fp != turn_fingerprint(user("hello!"))


def test_fingerprint_ignores_what_agents_change_when_echoing() -> None:
    reply = assistant(
        "Done.\nAll tests pass.",
        call("toolu_1", "bash", command="make test", timeout=10.0),
        thinking="Let me think about this carefully.",
    )
    assert turn_fingerprint(reply) == turn_fingerprint(echoed(reply))
    assert turn_fingerprint(user("hi")) == turn_fingerprint(user(f"hi\n\n{wrap_block('m')}"))
    assert turn_fingerprint(Turn("model", "x")) == turn_fingerprint(assistant("x"))
    empty = ToolCall(id="a", name="list", arguments="")
    assert turn_fingerprint(assistant("", empty)) == turn_fingerprint(
        assistant("", ToolCall(id="b", name="list", arguments="{}"))
    )


def test_fingerprint_keeps_what_identifies_a_turn() -> None:
    a = assistant("", call("1", "bash", command="ls"))
    assert turn_fingerprint(a) != turn_fingerprint(assistant("", call("1", "bash", command="pwd")))
    assert turn_fingerprint(a) != turn_fingerprint(assistant("", call("1", "sh", command="ls")))
    # Identical output of two different calls: the call id keeps them apart.
    assert turn_fingerprint(tool("c1", "ok")) != turn_fingerprint(tool("c2", "ok"))
    failed = Turn("tool", tool_results=(ToolResult("c1", "ok", is_error=True),))
    assert turn_fingerprint(failed) != turn_fingerprint(tool("c1", "ok"))
    raw = ToolCall("1", "bash", '{"command": "ls"')  # truncated JSON is hashed as text
    assert turn_fingerprint(assistant("", raw)) != turn_fingerprint(a)


def test_fingerprint_survives_odd_input() -> None:
    turn_fingerprint(user("lone \ud800 surrogate"))
    turn_fingerprint(assistant("", ToolCall("1", "f", "[" * 5000)))
    turn_fingerprint(assistant("", ToolCall("1", "f", {"a": 1})))  # type: ignore[arg-type]


# --- deltas ----------------------------------------------------------------------------


def test_forty_request_conversation_emits_every_turn_exactly_once() -> None:
    conv = Conversation()
    final: list[Turn] = []
    for k in range(40):
        last = final[-1] if final else None
        if last is not None and last.tool_calls:
            final.extend(tool(c.id, f"output {c.id}\n") for c in last.tool_calls)
        else:
            final.append(user("continue" if k % 4 == 1 else "yes" if k % 4 == 3 else f"task {k}"))
        calls = (call(f"toolu_{k}", "bash", command=f"make t{k % 3}", timeout=10.0),)
        reply = assistant("ok" if k % 5 == 0 else f"step {k}", *calls[: k % 2], thinking=f"hmm {k}")
        delta = conv.request([echoed(t) if t.role == "assistant" else t for t in final], reply)
        assert delta == [final[-1], reply]
        final.append(reply)
    assert fingerprints(conv.emitted) == fingerprints(final)
    assert conv.request([echoed(t) for t in final]) == []  # a last request adds nothing


def test_repeated_identical_short_turns_are_new_each_time() -> None:
    conv = Conversation()
    history: list[Turn] = [user("fix the bug")]
    assert conv.request(history, assistant("ok")) == [history[0], assistant("ok")]
    for _ in range(5):
        history += [assistant("ok"), user("yes")]
        assert conv.request(history, assistant("ok")) == [user("yes"), assistant("ok")]
    assert conv.seen[turn_fingerprint(user("yes"))] == 5
    assert conv.seen[turn_fingerprint(assistant("ok"))] == 6


def test_compaction_emits_the_summary_and_nothing_old() -> None:
    conv = Conversation()
    history = [user("task"), assistant("a1"), user("more"), assistant("a2"), user("go on")]
    conv.request(history[:-1])
    conv.request(history, assistant("a3"))
    summary = user("This session is being continued from a previous conversation. Summary: ...")
    compacted = [summary, assistant("a2"), user("go on"), assistant("a3"), user("next")]
    assert conv.request(compacted, assistant("a4")) == [summary, user("next"), assistant("a4")]
    assert conv.request([*compacted, assistant("a4"), user("n2")], assistant("a5")) == [
        user("n2"),
        assistant("a5"),
    ]


def test_retry_emits_nothing_again_and_a_different_reply_once() -> None:
    conv = Conversation()
    history = [user("task")]
    assert conv.request(history, assistant("first try")) == [user("task"), assistant("first try")]
    assert conv.request(history, assistant("first try")) == []
    assert conv.request(history) == []  # a failed retry without reply
    assert conv.request(history, assistant("second try")) == [assistant("second try")]
    assert conv.request([*history, assistant("second try"), user("thanks")]) == [user("thanks")]


def test_edited_or_cleared_thinking_does_not_make_a_turn_new() -> None:
    conv = Conversation()
    reply = assistant("answer", thinking="long chain of thought")
    conv.request([user("q")], reply)
    history = [user("q"), reply]
    for thinking in ("", "[redacted]", "long chain of thought, edited"):
        history = [*history[:1], Turn("assistant", "answer", thinking=thinking), *history[2:]]
        history.append(user(f"follow-up {thinking}"))
        assert conv.request(history) == [history[-1]]


def test_tool_argument_key_order_differs_between_reply_and_next_request() -> None:
    conv = Conversation()
    reply = assistant("", ToolCall("call_1", "edit", '{"path":"a.py","old":"x","new":"y"}'))
    conv.request([user("edit it")], reply)
    echo = assistant("", ToolCall("call_1", "edit", '{"new": "y", "old": "x", "path": "a.py"}'))
    result = tool("call_1", "edited")
    assert conv.request([user("edit it"), echo, result], assistant("done")) == [
        result,
        assistant("done"),
    ]


def test_system_turn_inserted_mid_conversation_is_the_only_new_turn() -> None:
    conv = Conversation()
    history = [user("a"), assistant("b"), user("c"), assistant("d"), user("e")]
    conv.request(history)
    note = Turn("system", "<system-reminder>the date changed</system-reminder>")
    assert conv.request([*history[:2], note, *history[2:]]) == [note]


def test_seen_counts_are_not_modified_and_only_grow() -> None:
    seen = {turn_fingerprint(user("yes")): 3}
    frozen = dict(seen)
    delta, updated = compute_delta(seen, [user("yes")])
    assert delta == [] and seen == frozen and updated == frozen


def test_known_limit_a_repeat_of_a_dropped_turn_after_compaction_is_missed() -> None:
    # Documented in the module: counts never shrink, so the compacted history's first
    # "continue" matches the one emitted before compaction.
    conv = Conversation()
    conv.request([user("task"), assistant("a"), user("continue")], assistant("b"))
    summary = user("Summary of the conversation so far")
    assert conv.request([summary, assistant("c"), user("continue")], assistant("d")) == [
        summary,
        assistant("c"),
        assistant("d"),
    ]


# --- property --------------------------------------------------------------------------

small_turns = st.one_of(
    st.builds(user, st.sampled_from(["yes", "continue", "fix it", "", "a\nb"])),
    st.builds(
        assistant,
        st.sampled_from(["ok", "done", ""]),
        thinking=st.sampled_from(["", "thinking"]),
    ),
    st.builds(
        lambda n, cmd, t: assistant(t, call(f"id{n}", "bash", command=cmd, n=1.0)),
        st.integers(0, 3),
        st.sampled_from(["ls", "make"]),
        st.sampled_from(["", "running"]),
    ),
    st.builds(tool, st.sampled_from(["id0", "id1"]), st.sampled_from(["ok", "error: x"])),
    st.builds(Turn, st.just("system"), st.sampled_from(["reminder"])),
)


@st.composite
def conversations(draw: st.DrawFn) -> tuple[list[Turn], list[int]]:
    turns = draw(st.lists(small_turns, min_size=1, max_size=30))
    cuts = draw(st.lists(st.integers(1, len(turns)), max_size=12))
    retries = draw(st.lists(st.integers(1, len(turns)), max_size=3))
    # Requests arrive in order; a retry repeats a request already sent.
    order = sorted({*cuts, len(turns)})
    for r in retries:
        earlier = [c for c in order if c <= r]
        if earlier:
            order.insert(order.index(earlier[-1]) + 1, earlier[-1])
    return turns, order


@settings(max_examples=400)
@given(conversations(), st.booleans())
def test_concatenated_deltas_are_the_final_conversation(
    case: tuple[list[Turn], list[int]], echo: bool
) -> None:
    turns, cuts = case
    conv = Conversation()
    for cut in cuts:
        # The last turn of each request plays the reply, exactly as the response gave it.
        history = [echoed(t) if echo else t for t in turns[: cut - 1]]
        conv.request(history, turns[cut - 1])
    assert fingerprints(conv.emitted) == fingerprints(turns)
    if not echo:
        assert conv.emitted == turns
