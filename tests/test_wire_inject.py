"""inject/strip: placement per format, fail-open, and the strip(inject(b)) == b property."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engram.wire.block import BLOCK_CLOSE, BLOCK_OPEN, has_block, remove_block, wrap_block
from engram.wire.injection import canonical, inject, inject_bytes, strip, strip_bytes
from engram.wire.model import Format

MEM = "- the project uses uv, not pip\n- tests run with make test"
W = wrap_block(MEM)
BLOCK = {"type": "text", "text": W}
CACHE = {"type": "ephemeral"}
FORMATS = [Format.ANTHROPIC, Format.OPENAI_CHAT, Format.OPENAI_RESPONSES, Format.GEMINI]


def roundtrips(body: dict[str, Any], fmt: Format) -> bool:
    return canonical(strip(inject(body, fmt, MEM), fmt), fmt) == canonical(body, fmt)


# --- Anthropic ---------------------------------------------------------------------


def test_anthropic_string_system_becomes_list_and_comes_back_as_string() -> None:
    body = {"model": "claude", "system": "You are Claude.", "messages": []}
    out = inject(body, Format.ANTHROPIC, MEM)
    assert out["system"] == [{"type": "text", "text": "You are Claude."}, BLOCK]
    assert strip(out, Format.ANTHROPIC) == body


def test_anthropic_list_system_keeps_cache_control_and_block_goes_last() -> None:
    system = [
        {"type": "text", "text": "billing header"},
        {"type": "text", "text": "You are Claude Code.", "cache_control": CACHE},
        {"type": "text", "text": "env: Primary working directory: /p", "cache_control": CACHE},
    ]
    body = {"system": system, "messages": [{"role": "user", "content": "hi"}]}
    out = inject(body, Format.ANTHROPIC, MEM)
    assert out["system"][:3] == system
    assert out["system"][:3][1] is system[1]  # shared, not copied
    assert out["system"][-1] == BLOCK and "cache_control" not in out["system"][-1]
    assert out["messages"] is body["messages"]
    assert strip(out, Format.ANTHROPIC) == body


@pytest.mark.parametrize("system", [None, "", "  ", []])
def test_anthropic_absent_or_empty_system(system: Any) -> None:
    body: dict[str, Any] = {"messages": []}
    if system is not None:
        body["system"] = system
    out = inject(body, Format.ANTHROPIC, MEM)
    assert out["system"] == [BLOCK]
    assert strip(out, Format.ANTHROPIC) == {"messages": []}
    assert roundtrips(body, Format.ANTHROPIC)


def test_anthropic_single_plain_block_list_comes_back_semantically_equal() -> None:
    body = {"system": [{"type": "text", "text": "S"}]}
    stripped = strip(inject(body, Format.ANTHROPIC, MEM), Format.ANTHROPIC)
    assert stripped == {"system": "S"}
    assert canonical(stripped, Format.ANTHROPIC) == canonical(body, Format.ANTHROPIC)


def test_anthropic_block_concatenated_into_another_text_is_removed() -> None:
    out = inject({"system": [{"type": "text", "text": "Intro."}]}, Format.ANTHROPIC, MEM)
    merged = out["system"][0]["text"] + "\n\n" + W + "\n\nMore rules."
    body = {"system": [{"type": "text", "text": merged, "cache_control": CACHE}]}
    stripped = strip(body, Format.ANTHROPIC)
    assert stripped == {
        "system": [{"type": "text", "text": "Intro.\n\nMore rules.", "cache_control": CACHE}]
    }


def test_anthropic_block_inside_string_system() -> None:
    assert strip({"system": "A\n\n" + W}, Format.ANTHROPIC) == {"system": "A"}
    assert strip({"system": W, "x": 1}, Format.ANTHROPIC) == {"x": 1}


# --- OpenAI chat -------------------------------------------------------------------


def test_chat_block_goes_after_the_leading_system_and_developer_run() -> None:
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "developer", "content": "dev"},
        {"role": "system", "content": [{"type": "text", "text": "more"}]},
        {"role": "user", "content": "hi"},
        {"role": "system", "content": "mid-conversation"},
        {"role": "assistant", "content": "hello"},
    ]
    body = {"model": "gpt", "messages": messages}
    out = inject(body, Format.OPENAI_CHAT, MEM)
    assert out["messages"][3] == {"role": "system", "content": W}
    assert out["messages"][:3] == messages[:3] and out["messages"][4:] == messages[3:]
    assert strip(out, Format.OPENAI_CHAT) == body


def test_chat_block_goes_first_without_system_messages() -> None:
    body = {"messages": [{"role": "user", "content": "hi"}]}
    out = inject(body, Format.OPENAI_CHAT, MEM)
    assert out["messages"][0] == {"role": "system", "content": W}
    assert strip(out, Format.OPENAI_CHAT) == body


def test_chat_block_appended_to_a_system_message_by_the_agent() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "sys\n\n" + W},
            {"role": "developer", "content": [{"type": "text", "text": W}, {"type": "x"}]},
            {"role": "user", "content": W},  # not ours to touch: only system placements
        ]
    }
    assert strip(body, Format.OPENAI_CHAT)["messages"] == [
        {"role": "system", "content": "sys"},
        {"role": "developer", "content": [{"type": "x"}]},
        {"role": "user", "content": W},
    ]


# --- OpenAI Responses ----------------------------------------------------------------


def test_responses_instructions_appended_with_blank_line() -> None:
    body = {"model": "gpt-5", "instructions": "Be terse.", "input": "hi"}
    out = inject(body, Format.OPENAI_RESPONSES, MEM)
    assert out["instructions"] == "Be terse.\n\n" + W
    assert strip(out, Format.OPENAI_RESPONSES) == body


@pytest.mark.parametrize("instructions", ["absent", None, ""])
def test_responses_without_instructions(instructions: Any) -> None:
    body: dict[str, Any] = {"input": []}
    if instructions != "absent":
        body["instructions"] = instructions
    out = inject(body, Format.OPENAI_RESPONSES, MEM)
    assert out["instructions"] == W
    assert strip(out, Format.OPENAI_RESPONSES) == {"input": []}
    assert roundtrips(body, Format.OPENAI_RESPONSES)


# --- Gemini ----------------------------------------------------------------------------


def test_gemini_parts_appended() -> None:
    si = {"role": "user", "parts": [{"text": "You are Gemini CLI."}]}
    body = {"contents": [], "systemInstruction": si}
    out = inject(body, Format.GEMINI, MEM)
    assert out["systemInstruction"] == {"role": "user", "parts": [*si["parts"], {"text": W}]}
    assert strip(out, Format.GEMINI) == body


def test_gemini_absent_and_string_system_instruction() -> None:
    body: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    out = inject(body, Format.GEMINI, MEM)
    assert out["systemInstruction"] == {"parts": [{"text": W}]}
    assert strip(out, Format.GEMINI) == body
    body_s = {**body, "systemInstruction": "old"}
    out = inject(body_s, Format.GEMINI, MEM)
    assert out["systemInstruction"] == {"parts": [{"text": "old"}, {"text": W}]}
    assert roundtrips(body_s, Format.GEMINI)


def test_gemini_code_assist_wrapper() -> None:
    request = {"contents": [], "systemInstruction": {"parts": [{"text": "sys"}]}}
    body = {"model": "gemini-2.5-pro", "project": "p-123", "request": request}
    out = inject(body, Format.GEMINI, MEM)
    assert "systemInstruction" not in out
    assert out["request"]["systemInstruction"]["parts"] == [{"text": "sys"}, {"text": W}]
    assert out["request"]["contents"] is request["contents"]
    assert strip(out, Format.GEMINI) == body
    bare = {"model": "m", "project": "p", "request": {"contents": []}}
    assert inject(bare, Format.GEMINI, MEM)["request"]["systemInstruction"] == {
        "parts": [{"text": W}]
    }
    assert strip(inject(bare, Format.GEMINI, MEM), Format.GEMINI) == bare


def test_gemini_snake_case_key_is_extended() -> None:
    body = {"contents": [], "system_instruction": {"parts": [{"text": "sys"}]}}
    out = inject(body, Format.GEMINI, MEM)
    assert "systemInstruction" not in out
    assert out["system_instruction"]["parts"][-1] == {"text": W}
    assert strip(out, Format.GEMINI) == body


# --- shared behaviour ------------------------------------------------------------------

SAMPLES: dict[Format, dict[str, Any]] = {
    Format.ANTHROPIC: {"system": [{"type": "text", "text": "s", "cache_control": CACHE}]},
    Format.OPENAI_CHAT: {"messages": [{"role": "system", "content": "s"}]},
    Format.OPENAI_RESPONSES: {"instructions": "s", "input": "hi"},
    Format.GEMINI: {"request": {"systemInstruction": {"parts": [{"text": "s"}]}}},
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_input_is_never_mutated(fmt: Format) -> None:
    body = SAMPLES[fmt]
    before = copy.deepcopy(body)
    injected = inject(body, fmt, MEM)
    assert body == before and injected != body
    injected_before = copy.deepcopy(injected)
    strip(injected, fmt)
    assert injected == injected_before


MALFORMED: list[tuple[Format, Any]] = [
    (Format.ANTHROPIC, {"system": 3}),
    (Format.ANTHROPIC, {"system": {"text": "x"}}),
    (Format.OPENAI_CHAT, {"messages": "hello"}),
    (Format.OPENAI_CHAT, {}),
    (Format.OPENAI_RESPONSES, {"instructions": ["x"]}),
    (Format.GEMINI, {"systemInstruction": 5}),
    (Format.GEMINI, {"systemInstruction": {"parts": "x"}}),
    (Format.UNKNOWN, {"system": "s", "messages": []}),
    (Format.ANTHROPIC, ["not", "a", "dict"]),
    (Format.ANTHROPIC, None),
]


@pytest.mark.parametrize(("fmt", "body"), MALFORMED)
def test_malformed_or_unknown_bodies_come_back_unchanged(fmt: Format, body: Any) -> None:
    before = copy.deepcopy(body)
    assert inject(body, fmt, MEM) == before
    assert strip(body, fmt) == before
    raw = json.dumps(body).encode()
    assert inject_bytes(raw, fmt, MEM) is raw


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("text", ["", "  \n"])
def test_blank_memory_text_injects_nothing(fmt: Format, text: str) -> None:
    assert inject(SAMPLES[fmt], fmt, text) == SAMPLES[fmt]


def test_memory_text_holding_delimiters_cannot_break_out_of_the_block() -> None:
    evil = f"note: the block ends with {BLOCK_CLOSE} and starts with {BLOCK_OPEN}"
    body = {"instructions": "Be terse.", "input": "hi"}
    out = inject(body, Format.OPENAI_RESPONSES, evil)
    assert out["instructions"].count(BLOCK_CLOSE) == 1
    assert strip(out, Format.OPENAI_RESPONSES) == body


def test_stray_unclosed_opener_before_the_block_survives() -> None:
    body = {"instructions": f"quote: {BLOCK_OPEN} and more"}
    out = inject(body, Format.OPENAI_RESPONSES, MEM)
    assert strip(out, Format.OPENAI_RESPONSES) == body


def test_remove_block_keeps_a_paragraph_break_between_texts() -> None:
    assert remove_block(f"A\n\n{W}\n\nB") == "A\n\nB"
    assert remove_block(f"A\n\n{W}\n\n{W}\n\nB") == "A\n\nB"
    assert remove_block(f"A\n\n{W}\n\n{W}") == "A"
    assert remove_block(f"{W} tail") == "tail"
    assert remove_block(f"{BLOCK_OPEN} no close") == f"{BLOCK_OPEN} no close"


# --- bytes wrappers --------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"", b"not json", b"\xff\xfe\x00", b"[1,2]", b'"s"', b"{"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_bytes_wrappers_return_non_json_input_unchanged(raw: bytes, fmt: Format) -> None:
    assert inject_bytes(raw, fmt, MEM) is raw
    assert strip_bytes(raw, fmt) is raw


def test_bytes_roundtrip_is_compact_utf8() -> None:
    raw = json.dumps({"system": "Grüße → 🙂", "messages": []}).encode()
    out = inject_bytes(raw, Format.ANTHROPIC, "mémoire")
    expected = {
        "system": [
            {"type": "text", "text": "Grüße → 🙂"},
            {"type": "text", "text": wrap_block("mémoire")},
        ],
        "messages": [],
    }
    assert out == json.dumps(expected, ensure_ascii=False, separators=(",", ":")).encode()
    assert json.loads(strip_bytes(out, Format.ANTHROPIC)) == json.loads(raw)
    assert strip_bytes(raw, Format.ANTHROPIC) is raw


def test_bytes_wrappers_fail_open_on_unencodable_results() -> None:
    raw = b'{"system": "s", "n": NaN}'
    assert inject_bytes(raw, Format.ANTHROPIC, MEM) is raw
    lone = b'{"system": "\\ud800"}'
    assert inject_bytes(lone, Format.ANTHROPIC, MEM) is lone


# --- properties ------------------------------------------------------------------------

FRAGMENTS = [
    "<engram-memory",
    "</engram-memory",
    BLOCK_OPEN,
    BLOCK_CLOSE,
    "<",
    ">",
    "&lt;",
    "\n",
    "\n\n",
    " ",
    "\t",
    "é",
    "🙂",
]


def _no_complete_block(text: str) -> bool:
    at = text.find(BLOCK_OPEN)
    return at < 0 or text.find(BLOCK_CLOSE, at) < 0


texts = st.one_of(
    st.text(),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4)), max_size=6).map("".join),
).filter(_no_complete_block)
memory_texts = st.text(min_size=1).filter(str.strip) | st.sampled_from(
    [MEM, f"x {BLOCK_CLOSE} y", f"{BLOCK_OPEN} only"]
)
ABSENT = object()


def _body(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not ABSENT}


anthropic_blocks = st.builds(
    lambda text, cache: {
        "type": "text",
        "text": text,
        **({"cache_control": CACHE} if cache else {}),
    },
    texts,
    st.booleans(),
)
anthropic_bodies = st.builds(
    lambda system, messages: _body(model="claude", system=system, messages=messages),
    st.one_of(st.just(ABSENT), st.none(), texts, st.lists(anthropic_blocks, max_size=4)),
    st.lists(
        st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]), "content": texts})
    ),
)
chat_content = st.one_of(
    texts, st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": texts}), max_size=3)
)
chat_bodies = st.builds(
    lambda messages: {"model": "gpt", "messages": messages},
    st.lists(
        st.fixed_dictionaries(
            {
                "role": st.sampled_from(["system", "developer", "user", "assistant"]),
                "content": chat_content,
            }
        ),
        max_size=6,
    ),
)
responses_bodies = st.builds(
    lambda instructions, user: _body(model="gpt-5", instructions=instructions, input=user),
    st.one_of(st.just(ABSENT), st.none(), texts),
    texts,
)
gemini_si = st.one_of(
    st.just(ABSENT),
    st.none(),
    texts,
    st.builds(
        lambda parts, role: _body(parts=parts, role=role),
        st.one_of(st.just(ABSENT), st.lists(st.fixed_dictionaries({"text": texts}), max_size=3)),
        st.one_of(st.just(ABSENT), st.just("user")),
    ),
)
gemini_plain = st.builds(
    lambda si, key, text: _body(
        contents=[{"role": "user", "parts": [{"text": text}]}], **{key: si}
    ),
    gemini_si,
    st.sampled_from(["systemInstruction", "system_instruction"]),
    texts,
)
gemini_bodies = st.one_of(
    gemini_plain,
    gemini_plain.map(lambda req: {"model": "gemini", "project": "p", "request": req}),
)
bodies = st.one_of(
    st.tuples(st.just(Format.ANTHROPIC), anthropic_bodies),
    st.tuples(st.just(Format.OPENAI_CHAT), chat_bodies),
    st.tuples(st.just(Format.OPENAI_RESPONSES), responses_bodies),
    st.tuples(st.just(Format.GEMINI), gemini_bodies),
)


@settings(max_examples=400)
@given(bodies, memory_texts)
def test_strip_inverts_inject(case: tuple[Format, dict[str, Any]], memory: str) -> None:
    fmt, body = case
    before = copy.deepcopy(body)
    injected = inject(body, fmt, memory)
    assert injected != body  # the block really went in (inject fails open silently)
    assert has_block(json.dumps(injected, ensure_ascii=False).replace('\\"', '"'))
    assert canonical(strip(injected, fmt), fmt) == canonical(body, fmt)
    assert body == before


@settings(max_examples=300)
@given(bodies, memory_texts, memory_texts)
def test_strip_removes_every_block_after_nested_injections(
    case: tuple[Format, dict[str, Any]], first: str, second: str
) -> None:
    fmt, body = case
    twice = inject(inject(body, fmt, first), fmt, second)
    assert canonical(strip(twice, fmt), fmt) == canonical(body, fmt)


@settings(max_examples=300)
@given(bodies)
def test_strip_without_block_changes_nothing(case: tuple[Format, dict[str, Any]]) -> None:
    fmt, body = case
    assert strip(body, fmt) == body
    raw = json.dumps(body).encode()
    assert strip_bytes(raw, fmt) is raw


@settings(max_examples=200)
@given(bodies, memory_texts)
def test_bytes_roundtrip(case: tuple[Format, dict[str, Any]], memory: str) -> None:
    fmt, body = case
    raw = json.dumps(body, ensure_ascii=False).encode()
    injected = inject_bytes(raw, fmt, memory)
    assert injected != raw
    back = json.loads(strip_bytes(injected, fmt))
    assert canonical(back, fmt) == canonical(body, fmt)


# --- splicing into the agent's bytes (wire/splice.py) ------------------------------------

SERIALIZATIONS = [
    {"ensure_ascii": False, "separators": (",", ":")},  # Node's JSON.stringify, httpx
    {"ensure_ascii": False},
    {"ensure_ascii": False, "indent": 2},
    {"ensure_ascii": True},  # escaped non-ASCII; escaped surrogates take the old path
]


def _old_inject_bytes(raw: bytes, fmt: Format, memory: str) -> bytes:
    """What inject_bytes did before splicing: parse, inject, serialize."""
    return json.dumps(inject(json.loads(raw), fmt, memory), ensure_ascii=False).encode()


@settings(max_examples=300)
@given(bodies, memory_texts, st.sampled_from(SERIALIZATIONS))
def test_splice_means_what_reserializing_meant(
    case: tuple[Format, dict[str, Any]], memory: str, style: dict[str, Any]
) -> None:
    from engram.wire.splice import splice

    fmt, body = case
    raw = json.dumps(body, **style).encode()
    spliced = splice(raw, fmt, wrap_block(memory))
    if not style["ensure_ascii"]:
        assert spliced is not None  # every generated shape is spliced, not re-serialized
    out = inject_bytes(raw, fmt, memory)
    assert json.loads(out) == json.loads(_old_inject_bytes(raw, fmt, memory))
    assert json.loads(out) == inject(body, fmt, memory)


@pytest.mark.parametrize(
    ("fmt", "raw", "expected"),
    [
        (
            Format.ANTHROPIC,
            b'{ "model" : "c",\n  "system" : [ {"type": "text", "text": "s"} ] ,"n": 1.50 }',
            b'{ "model" : "c",\n  "system" : [ {"type": "text", "text": "s"} ,@B] ,"n": 1.50 }',
        ),
        (
            Format.ANTHROPIC,
            b'{"system": "s\\u00e9", "n": 1E5}',
            b'{"system": [{"type":"text","text":"s\\u00e9"},@B], "n": 1E5}',
        ),
        (Format.ANTHROPIC, b'{"messages": []}', b'{"messages": [],"system":[@B]}'),
        (Format.ANTHROPIC, b"{}", b'{"system":[@B]}'),
        (
            Format.OPENAI_CHAT,
            b'{"messages": [{"role": "system", "content": "s"}, {"role": "user"}]}',
            b'{"messages": [{"role": "system", "content": "s"}, @M,{"role": "user"}]}',
        ),
        (
            Format.OPENAI_RESPONSES,
            b'{"instructions": "be terse", "input": "hi"}',
            b'{"instructions": "be terse\\n\\n@W", "input": "hi"}',
        ),
        (
            Format.GEMINI,
            b'{"request": {"systemInstruction": {"role": "user", "parts": [{"text": "s"}]}}}',
            b'{"request": {"systemInstruction": {"role": "user", "parts": [{"text": "s"},@P]}}}',
        ),
    ],
)
def test_splice_keeps_the_agents_bytes(fmt: Format, raw: bytes, expected: bytes) -> None:
    """Spacing, key order, escapes and number spelling outside the block stay as sent."""
    w = json.dumps(W, ensure_ascii=False)
    pieces = {
        b"@B": '{"type":"text","text":' + w + "}",
        b"@M": '{"role":"system","content":' + w + "}",
        b"@W": w[1:-1],
        b"@P": '{"text":' + w + "}",
    }
    for marker, text in pieces.items():
        expected = expected.replace(marker, text.encode())
    assert inject_bytes(raw, fmt, MEM) == expected


@pytest.mark.parametrize(
    ("raw", "spliced"),
    [
        # the last duplicate is the one json.loads reads, and the one spliced
        (b'{"system": "a", "system": ["not", "text"]}', True),
        (b'{"system": "a", "messages": []}\n{"x": 1}', False),  # trailing data: not JSON
        (b'\xef\xbb\xbf{"system": "a"}', False),  # a byte-order mark: json.loads' decoding
        (b'{"system": "a", "n": -Infinity}', False),
        (b'{"system": "a", "n": [1, 2,]}', False),
        (b'  {"system": "\\ud83d\\ude42"}  ', False),  # escaped surrogates
    ],
)
def test_splice_leaves_doubtful_bodies_to_the_old_path(raw: bytes, spliced: bool) -> None:
    from engram.wire.splice import splice

    assert (splice(raw, Format.ANTHROPIC, wrap_block(MEM)) is not None) == spliced
    out = inject_bytes(raw, Format.ANTHROPIC, MEM)
    try:
        body = json.loads(raw)
    except ValueError:
        assert out is raw
        return
    if out is raw:  # the old path failed open (-Infinity goes out untouched)
        assert "n" in body and body["n"] == float("-inf")
    else:
        assert json.loads(out) == inject(body, Format.ANTHROPIC, MEM)


@settings(max_examples=200)
@given(bodies, memory_texts, st.sampled_from(SERIALIZATIONS))
def test_a_body_walked_once_reads_and_splices_like_one_parsed_twice(
    case: tuple[Format, dict[str, Any]], memory: str, style: dict[str, Any]
) -> None:
    """The recall step walks the body once, for its parser and for injection."""
    from engram.wire.splice import walk

    fmt, body = case
    raw = json.dumps(body, **style).encode()
    walked = walk(raw, fmt)
    if walked is not None:
        assert walked.value == json.loads(raw)
    assert inject_bytes(raw, fmt, memory, walked) == inject_bytes(raw, fmt, memory)


def test_a_walk_of_other_bytes_is_not_used() -> None:
    from engram.wire.splice import walk

    other = walk(b'{"system": "other", "messages": []}', Format.ANTHROPIC)
    raw = b'{"system": "mine"}'
    out = json.loads(inject_bytes(raw, Format.ANTHROPIC, MEM, other))
    assert out["system"][0] == {"type": "text", "text": "mine"}
