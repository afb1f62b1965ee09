"""The analyzer's answer grammar: engram commands in shell quoting, one per line."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engram.analyzer.grammar import (
    Command,
    ParseResult,
    fold_text,
    parse_commands,
    render_command,
)
from engram.store.schema import ID_ALPHABET, KINDS

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ID = "m-4k2p9xqa"


def one(line: str) -> Command:
    result = parse_commands(line)
    assert result.rejected == [], result.rejected
    assert len(result.commands) == 1, result
    return result.commands[0]


def reason(line: str) -> str:
    result = parse_commands(line)
    assert result.commands == [], result.commands
    assert len(result.rejected) == 1, result
    number, raw, why = result.rejected[0]
    assert (number, raw) == (1, line)
    return why


# --- accepted forms ---------------------------------------------------------------------


def test_escaped_double_quotes_do_not_truncate() -> None:
    cmd = one(r'engram add "use \"pnpm\" not npm"')
    assert cmd == Command("add", 'use "pnpm" not npm', None, None, None, 1)


@pytest.mark.parametrize(
    ("line", "text"),
    [
        ("engram add 'single quoted $HOME `x`'", "single quoted $HOME `x`"),
        ("engram add 'it'\\''s fine'", "it's fine"),
        ('engram add "it\'s fine"', "it's fine"),
        (r'engram add "run \`make\` and \$HOME stays"', "run `make` and $HOME stays"),
        (r'engram add "keep \n and \d as typed"', r"keep \n and \d as typed"),
        (r'engram add "a \\ backslash"', "a \\ backslash"),
        ("engram add unquoted", "unquoted"),
        (r"engram add escaped\ space", "escaped space"),
        ('engram add "  padded  "', "padded"),
        ('engram add "Ünïcödé — 日本語 ✓ emoji 🎉"', "Ünïcödé — 日本語 ✓ emoji 🎉"),
        ('engram add "C# is used" # a trailing comment', "C# is used"),
        ('engram add "--no-verify is banned here"', "--no-verify is banned here"),
        ('engram add -- "-x flag"', "-x flag"),
        ('engram\tadd\t"tabs between words"', "tabs between words"),
    ],
)
def test_quoting(line: str, text: str) -> None:
    assert one(line).text == text


@pytest.mark.parametrize(
    "line",
    [
        'engram add --kind gotcha --scope project "fact"',
        'engram add "fact" --kind gotcha --scope project',
        'engram add --scope project "fact" --kind gotcha',
        'engram add -k gotcha -s project "fact"',
        'engram add --kind=gotcha --scope=project "fact"',
        'engram add --kind GOTCHA --scope Project "fact"',
        "engram add --kind 'gotcha' \"fact\" -s project",
    ],
)
def test_options_in_any_order_and_form(line: str) -> None:
    assert one(line) == Command("add", "fact", "gotcha", "project", None, 1)


def test_supersede_and_forget() -> None:
    assert one(f'engram supersede {ID} "new text"') == Command(
        "supersede", "new text", None, None, ID, 1
    )
    assert one(f'engram supersede {ID} --kind decision "t"').kind == "decision"
    assert one(f'engram supersede --kind=fact {ID} "t"').kind == "fact"
    assert one(f"engram forget {ID}") == Command("forget", None, None, None, ID, 1)


def test_upper_case_id_is_normalised() -> None:
    assert one("engram forget M-4K2P9XQA").target == ID
    assert one('engram supersede M-4k2P9xqa "t"').target == ID


@pytest.mark.parametrize(
    "line",
    [
        '```bash\nengram add "x"\n```',
        '~~~\nengram add "x"\n~~~',
        '`engram add "x"`',
        '``engram add "x"``',
        '```engram add "x"```',
        '- engram add "x"',
        '* engram add "x"',
        '1. engram add "x"',
        '$ engram add "x"',
        '- $ engram add "x"',
        '- `engram add "x"`',
        '   engram add "x"   ',
        '\ufeffengram add "x"',
        'engram add "x"\r\n',
    ],
)
def test_decoration_is_tolerated(line: str) -> None:
    result = parse_commands(line)
    assert [c.text for c in result.commands] == ["x"]
    assert result.rejected == []


def test_prose_blank_none_and_fences_are_counted_as_ignored() -> None:
    answer = "\n".join(
        [
            "Here is what I would keep:",  # 1 prose
            "",  # 2 blank
            "```bash",  # 3 fence
            'engram add --kind fact "Port 5173"',  # 4
            "```",  # 5 fence
            "NONE",  # 6
            "Engram should remember this.",  # 7 capitalised prose, not a command
            "engramatic prose",  # 8
            "I ran engram add earlier.",  # 9
            "engram forget m-bad",  # 10 rejected
        ]
    )
    result = parse_commands(answer)
    assert [c.line for c in result.commands] == [4]
    assert result.ignored == 8
    assert [r[0] for r in result.rejected] == [10]
    assert parse_commands("") == ParseResult([], 0, [])
    assert parse_commands("NONE").ignored == 1


def test_line_numbers_are_one_based_and_stable() -> None:
    answer = f'prose\nengram add "a"\n\nengram forget {ID}\n'
    assert [c.line for c in parse_commands(answer).commands] == [2, 4]


# --- rejections ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('engram add "unbalanced', "unbalanced double quote"),
        ("engram add 'unbalanced", "unbalanced single quote"),
        ('engram add "x" \\', "line ends with a backslash"),
        ("engram", "missing action"),
        ('engram edit m-4k2p9xqa "x"', "unknown action 'edit'"),
        ('engram "add" "x"', "unknown action 'add'"),
        ('engram add --priority high "x"', "unknown option '--priority'"),
        ('engram add -k=fact "x"', "unknown option '-k=fact'"),
        ('engram add "x" -v', "unknown option '-v'"),
        ('engram add --kind fact --kind gotcha "x"', "--kind given twice"),
        ('engram add "x" --kind', "--kind needs a value"),
        ('engram add --kind opinion "x"', "unknown kind 'opinion'"),
        ('engram add --kind= "x"', "unknown kind ''"),
        ('engram add --scope /home/dev/p "x"', "unknown scope '/home/dev/p'"),
        ("engram add", "add needs the memory text"),
        ("engram add --kind fact", "add needs the memory text"),
        ('engram add "   "', "empty memory text"),
        ("engram add use pnpm not npm", "extra argument 'pnpm'"),
        ('engram add "a" "b"', "extra argument 'b'"),
        ("engram supersede", "supersede needs a memory id"),
        (f"engram supersede {ID}", "supersede needs the memory text"),
        (f'engram supersede {ID} --scope global "x"', "supersede takes no --scope option"),
        (f'engram supersede {ID} "a" "b"', "extra argument 'b'"),
        ('engram supersede "new text" m-4k2p9xqa', "bad memory id 'new text'"),
        ("engram forget", "forget needs a memory id"),
        (f"engram forget {ID} m-5k2p9xqa", "extra argument 'm-5k2p9xqa'"),
        (f"engram forget {ID} because it is wrong", "extra argument 'because'"),
        (f"engram forget --kind fact {ID}", "forget takes no --kind option"),
    ],
)
def test_rejections_carry_a_reason(line: str, expected: str) -> None:
    assert reason(line).startswith(expected)


@pytest.mark.parametrize(
    "bad",
    [
        "m-4k2p9xq",  # 7 characters
        "m-4k2p9xqab",  # 9 characters
        "4k2p9xqa",  # no prefix
        "m-4k2p",  # a prefix the CLI would accept, not a full id
        "m-4k2p9xqu",  # u is not in the alphabet
        "M-ILOU0000",  # i, l, o, u are not in the alphabet, even upper case
        "[m-4k2p9xqa]",
        "m-4k2p9xqa.",
        "m-4k2p9xqa,",
        "mem-4k2p9xqa",
        "m_4k2p9xqa",
        "m-４k2p9xqa",  # a full-width digit
    ],
)
def test_bad_id_shapes_are_rejected(bad: str) -> None:
    assert reason(f"engram forget {bad}").startswith("bad memory id")
    assert reason(f'engram supersede {bad} "x"').startswith("bad memory id")


def test_rejection_keeps_the_raw_line_and_the_rest_still_parses() -> None:
    answer = f'- engram add "unbalanced\nengram forget {ID}'
    result = parse_commands(answer)
    assert result.rejected == [(1, '- engram add "unbalanced', "unbalanced double quote")]
    assert [c.action for c in result.commands] == ["forget"]


def test_a_thousand_line_answer_parses_quickly() -> None:
    lines = []
    for i in range(1000):
        lines.append(
            [
                f'engram add --kind fact --scope project "fact {i} with \\"quotes\\" and `code`"',
                f"engram forget {ID}",
                "some prose the model added",
                "engram add unbalanced 'quote",
            ][i % 4]
        )
    started = time.perf_counter()
    result = parse_commands("\n".join(lines))
    elapsed = time.perf_counter() - started
    assert len(result.commands) == 500
    assert result.ignored == 250
    assert len(result.rejected) == 250
    assert elapsed < 2.0  # linear: ~0.05 s here; a quadratic parser takes minutes


# --- rendering ------------------------------------------------------------------------------


def test_render_canonical_forms() -> None:
    assert render_command(Command("add", "Use pnpm", "preference", "global", None, 7)) == (
        "engram add --kind preference --scope global 'Use pnpm'"
    )
    assert render_command(Command("add", "x", None, None, None, 1)) == "engram add 'x'"
    assert render_command(Command("supersede", 'don\'t "$x"', "fact", None, ID, 1)) == (
        f'engram supersede {ID} --kind fact "don\'t \\"\\$x\\""'
    )
    assert render_command(Command("forget", None, None, None, ID, 1)) == f"engram forget {ID}"


def test_render_folds_line_breaks() -> None:
    cmd = Command("add", "  first line\nsecond\r\nthird\u2028fourth  ", "fact", None, None, 1)
    assert render_command(cmd) == "engram add --kind fact 'first line second third fourth'"
    assert fold_text("a\n\nb") == "a  b"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_rendered_commands_mean_the_same_to_bash() -> None:
    """A rendered line can be pasted into a shell: bash passes the CLI the same words.
    (`shlex` would not: it keeps the backslash of `\\$` inside double quotes.)"""
    for text in ["plain", "it's", 'say "hi"', "back\\slash", "$HOME `cmd`", "it's $5 \\ `x`"]:
        line = render_command(Command("add", text, "fact", None, None, 1))
        assert one(line).text == text
        script = line.replace("engram", "printf '%s\\0'", 1)
        out = subprocess.run(["bash", "-c", script], capture_output=True, check=True).stdout
        assert out.decode().split("\0")[:-1] == ["add", "--kind", "fact", text]


# --- properties -----------------------------------------------------------------------------

ids = st.text(alphabet=ID_ALPHABET, min_size=8, max_size=8).map(lambda s: "m-" + s)
# Arbitrary unicode, with the characters that break naive parsers made frequent.
texts = st.text(
    alphabet=st.one_of(st.characters(), st.sampled_from(list("\"'\\$`#-= \n\t\r"))),
    min_size=1,
    max_size=80,
).filter(lambda t: fold_text(t) != "")
kinds = st.one_of(st.none(), st.sampled_from(KINDS))


@st.composite
def commands(draw: st.DrawFn) -> Command:
    action = draw(st.sampled_from(["add", "supersede", "forget"]))
    if action == "forget":
        return Command("forget", None, None, None, draw(ids), 1)
    text = draw(texts)
    kind = draw(kinds)
    if action == "supersede":
        return Command("supersede", text, kind, None, draw(ids), 1)
    scope = draw(st.one_of(st.none(), st.sampled_from(["global", "project"])))
    return Command("add", text, kind, scope, None, 1)


@FAST
@given(commands())
def test_render_then_parse_round_trips(cmd: Command) -> None:
    expected = cmd if cmd.text is None else replace(cmd, text=fold_text(cmd.text))
    assert parse_commands(render_command(cmd)) == ParseResult([expected], 0, [])


@FAST
@given(st.lists(commands(), min_size=1, max_size=8))
def test_answers_of_many_rendered_commands_round_trip(cmds: list[Command]) -> None:
    answer = "\n".join(render_command(c) for c in cmds)
    result = parse_commands(answer)
    assert [replace(c, line=1) for c in result.commands] == [
        c if c.text is None else replace(c, text=fold_text(c.text)) for c in cmds
    ]
    assert [c.line for c in result.commands] == list(range(1, len(cmds) + 1))


WORDS = "engram add supersede forget --kind -k --scope= -- fact project = # ```".split()
command_like = st.lists(
    st.one_of(
        st.sampled_from([*WORDS, ID, '"', "'", "\\", "`", "- ", "$ ", " ", "\n"]),
        st.text(max_size=5),
    ),
    max_size=30,
).map("".join)


@FAST
@given(st.one_of(st.text(), command_like))
def test_parse_never_raises_and_accounts_for_every_line(answer: str) -> None:
    result = parse_commands(answer)
    lines = len(answer.lstrip("\ufeff").splitlines())
    assert len(result.commands) + result.ignored + len(result.rejected) == lines
    assert not any(r[2].startswith("internal error") for r in result.rejected)
    for cmd in result.commands:
        assert cmd.action in ("add", "supersede", "forget")
        assert cmd.kind is None or cmd.kind in KINDS
        assert cmd.text is None or (cmd.text == cmd.text.strip() and cmd.text)


@FAST
@given(
    st.text(
        alphabet=st.one_of(
            # shlex splits on ASCII whitespace only, we on any: leave the rest out.
            st.characters(exclude_characters="\\#", exclude_categories=("Zs", "Zl", "Zp", "Cc")),
            st.sampled_from(list(" \t\"'")),
        ),
        max_size=60,
    )
)
def test_splitting_agrees_with_shlex_without_backslashes_or_comments(words: str) -> None:
    """Our splitter follows shell rules; where shlex does too, the two agree."""
    line = "engram add " + " ".join(words.splitlines())
    try:
        expected = shlex.split(line)
    except ValueError:
        assert parse_commands(line).commands == []
        return
    result = parse_commands(line)
    if len(expected) == 3 and not expected[2].startswith("-") and expected[2].strip():
        assert [c.text for c in result.commands] == [expected[2].strip()]


def test_non_string_input_is_an_empty_result() -> None:
    assert parse_commands(None) == ParseResult([], 0, [])  # type: ignore[arg-type]
