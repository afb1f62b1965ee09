"""Reading the analyzer model's answer: engram commands, one per line, in shell quoting.

The model answers in engram's own CLI grammar because it already knows how to write a
shell command, and a line per memory fails one line at a time instead of as a whole (a
JSON answer with one bad escape loses everything). Three commands are understood:

    engram add [--kind K] [--scope global|project] "text"
    engram supersede ID [--kind K] "corrected text"
    engram forget ID

Words are split by POSIX shell rules, implemented here rather than with `shlex` because
`shlex` differs from the shell exactly where models write facts: it keeps the backslash
of `\\`` and `\\$` inside double quotes (so "run \\`make\\`" would be stored with the
backslashes) and, with comments on, cuts `C#rocks` at the `#`. Here, as in bash: single
quotes are literal; in double quotes a backslash escapes only `$`, a backtick, `"` and
`\\`; outside quotes it escapes any character; `#` at the start of an unquoted word
begins a comment. Nothing is expanded (`$HOME`, backticks and `$'...'` stay literal).

A token whose first character was quoted or escaped is never an option, so
`engram add "--no-verify is banned"` is a fact, and `render_command` always quotes text.
This module only checks the shape of a command; length, redaction, duplicates and
whether an id was among the candidates are the runner's business.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, cast

from engram.store.schema import ID_ALPHABET, ID_LENGTH, ID_PREFIX, KINDS

Action = Literal["add", "supersede", "forget"]
Scope = Literal["global", "project"]

ACTIONS: tuple[Action, ...] = ("add", "supersede", "forget")
SCOPES: tuple[Scope, ...] = ("global", "project")

_ID = re.compile(rf"{re.escape(ID_PREFIX)}[{ID_ALPHABET}]{{{ID_LENGTH}}}")
# Decoration a model puts around a command line: list bullets, numbering, a shell prompt.
_PREFIX = re.compile(r"(?:[-*+]|\d{1,3}[.)]|\$|>)\s+")
_FENCE = ("```", "~~~")
_OPTION_NAMES = {"--kind": "kind", "-k": "kind", "--scope": "scope", "-s": "scope"}


@dataclass(frozen=True)
class Command:
    """One accepted command. `kind`/`scope` are None when the model left them out; the
    runner picks defaults (it knows whether the conversation had a project)."""

    action: Action
    text: str | None
    kind: str | None
    scope: Scope | None
    target: str | None
    line: int


@dataclass
class ParseResult:
    """Accepted commands, how many lines were not commands at all (prose, blank, NONE,
    fences), and the command lines that were rejected as (line number, line, reason)."""

    commands: list[Command] = field(default_factory=list)
    ignored: int = 0
    rejected: list[tuple[int, str, str]] = field(default_factory=list)


class _Reject(Exception):
    """A malformed command; the message is the reason recorded in ParseResult."""


@dataclass(frozen=True)
class _Word:
    value: str
    literal_start: bool  # first character quoted or escaped: never an option


def parse_commands(answer: str) -> ParseResult:
    """Parse a whole answer. Never raises: every line is a command, ignored or rejected."""
    result = ParseResult()
    if not isinstance(answer, str):
        return result
    for number, raw in enumerate(answer.lstrip("\ufeff").splitlines(), start=1):
        line = _undecorate(raw)
        if line is None or not _looks_like_command(line):
            result.ignored += 1
            continue
        try:
            result.commands.append(_parse_line(line, number))
        except _Reject as exc:
            result.rejected.append((number, raw, str(exc)))
        except Exception as exc:  # pragma: no cover - a bug must cost one line, not the batch
            result.rejected.append((number, raw, f"internal error: {exc!r}"))
    return result


def _undecorate(raw: str) -> str | None:
    """The line without bullets, prompts and wrapping backticks; None for a fence line."""
    line = raw.strip()
    if line.startswith(_FENCE) and not _wrapped(line):
        return None  # "```bash", "```", "~~~" (but "```engram add 'x'```" is a command)
    while True:
        before = line
        match = _PREFIX.match(line)
        if match:
            line = line[match.end() :].lstrip()
        ticks = _wrapped(line)
        if ticks:
            line = line[ticks:-ticks].strip()
        if line == before:
            return line


def _wrapped(line: str) -> int:
    """How many backticks wrap the whole line on both sides (0: not wrapped)."""
    ticks = len(line) - len(line.lstrip("`"))
    return ticks if ticks > 0 and 2 * ticks < len(line) and line.endswith("`" * ticks) else 0


def _looks_like_command(line: str) -> bool:
    # Case-sensitive on purpose: prose such as "Engram should ..." is not a command.
    return line == "engram" or (line.startswith("engram") and line[6].isspace())


def _parse_line(line: str, number: int) -> Command:
    words = _split(line)[1:]  # drop "engram"
    if not words:
        raise _Reject("missing action (add, supersede or forget)")
    action = words[0].value
    if action not in ACTIONS or words[0].literal_start:
        raise _Reject(f"unknown action {action!r} (expected add, supersede or forget)")
    options, positional = _options(words[1:], action)
    kind = options.get("kind")
    scope = cast(Scope | None, options.get("scope"))
    if action == "add":
        text = _one_text(positional, action)
        return Command("add", text, kind, scope, None, number)
    if not positional:
        raise _Reject(f"{action} needs a memory id")
    target = _memory_id(positional[0])
    if action == "forget":
        if len(positional) > 1:
            raise _Reject(f"extra argument {positional[1]!r} (forget takes only an id)")
        return Command("forget", None, None, None, target, number)
    text = _one_text(positional[1:], action)
    return Command("supersede", text, kind, None, target, number)


def _options(words: list[_Word], action: str) -> tuple[dict[str, str], list[str]]:
    """Split words into options and positional arguments, validating option values."""
    allowed = {"add": ("kind", "scope"), "supersede": ("kind",), "forget": ()}[action]
    options: dict[str, str] = {}
    positional: list[str] = []
    i = 0
    only_positional = False
    while i < len(words):
        word = words[i]
        i += 1
        is_option = not word.literal_start and word.value.startswith("-") and word.value != "-"
        if only_positional or not is_option:
            positional.append(word.value)
            continue
        if word.value == "--":
            only_positional = True
            continue
        name, eq, value = word.value.partition("=")
        key = _OPTION_NAMES.get(name)
        if key is None or (eq and not name.startswith("--")):
            raise _Reject(f"unknown option {word.value!r}")
        if key not in allowed:
            raise _Reject(f"{action} takes no {name} option")
        if key in options:
            raise _Reject(f"{name} given twice")
        if not eq:
            if i >= len(words):
                raise _Reject(f"{name} needs a value")
            value = words[i].value
            i += 1
        options[key] = _option_value(key, value)
    return options, positional


def _option_value(key: str, value: str) -> str:
    norm = value.strip().lower()
    if key == "kind" and norm not in KINDS:
        raise _Reject(f"unknown kind {value!r} (one of: {', '.join(KINDS)})")
    if key == "scope" and norm not in SCOPES:
        raise _Reject(f"unknown scope {value!r} (global or project)")
    return norm


def _one_text(positional: list[str], action: str) -> str:
    if not positional:
        raise _Reject(f"{action} needs the memory text")
    if len(positional) > 1:
        raise _Reject(f"extra argument {positional[1]!r} (quote the whole text as one argument)")
    text = positional[0].strip()
    if not text:
        raise _Reject("empty memory text")
    return text


def _memory_id(value: str) -> str:
    norm = value.lower()
    if not _ID.fullmatch(norm):
        raise _Reject(
            f"bad memory id {value!r} (expected {ID_PREFIX} and {ID_LENGTH} characters "
            f"of {ID_ALPHABET})"
        )
    return norm


def _split(line: str) -> list[_Word]:
    """Split one line into words by POSIX shell quoting rules (see the module doc)."""
    words: list[_Word] = []
    chars: list[str] | None = None  # the word being built; None between words
    literal_start = False
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c.isspace():
            if chars is not None:
                words.append(_Word("".join(chars), literal_start))
                chars = None
            i += 1
            continue
        if chars is None:
            if c == "#":
                break  # a comment runs to the end of the line
            chars, literal_start = [], c in "'\"\\"
        if c == "'":
            end = line.find("'", i + 1)
            if end < 0:
                raise _Reject("unbalanced single quote")
            chars.append(line[i + 1 : end])
            i = end + 1
        elif c == '"':
            i += 1
            while True:
                if i >= n:
                    raise _Reject("unbalanced double quote")
                c = line[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\" and i + 1 < n and line[i + 1] in '$`"\\':
                    chars.append(line[i + 1])
                    i += 2
                else:
                    chars.append(c)
                    i += 1
        elif c == "\\":
            if i + 1 >= n:
                raise _Reject("line ends with a backslash (one command per line)")
            chars.append(line[i + 1])
            i += 2
        else:
            chars.append(c)
            i += 1
    if chars is not None:
        words.append(_Word("".join(chars), literal_start))
    return words


def render_command(cmd: Command) -> str:
    """The canonical one-line form: options before the text, the text always quoted.

    Line breaks inside the text (anything `str.splitlines` breaks at) become single
    spaces and the text is stripped, because the grammar is one command per line;
    `parse_commands(render_command(c))` then gives back `c` with that text (line aside).
    The result is also a valid shell command line for the real `engram` CLI.
    """
    parts = ["engram", cmd.action]
    if cmd.target is not None and cmd.action != "add":
        parts.append(_quote_word(cmd.target))
    if cmd.action != "forget":
        if cmd.kind is not None:
            parts += ["--kind", _quote_word(cmd.kind)]
        if cmd.scope is not None and cmd.action == "add":
            parts += ["--scope", _quote_word(cmd.scope)]
        parts.append(quote_text(fold_text(cmd.text or "")))
    return " ".join(parts)


def fold_text(text: str) -> str:
    """Memory text as one line: line breaks become spaces, ends stripped."""
    return " ".join(text.splitlines()).strip()


def quote_text(text: str) -> str:
    """Quote for the shell, choosing the readable form: single quotes unless the text has
    an apostrophe, then double quotes with `\\`, `"`, `$` and backticks escaped."""
    if "'" not in text:
        return f"'{text}'"
    return '"' + re.sub(r'([\\"$`])', r"\\\1", text) + '"'


def _quote_word(word: str) -> str:
    """Ids, kinds and scopes are plain words; anything else is quoted so a bad value
    cannot smuggle extra arguments into the rendered line."""
    if word and re.fullmatch(r"[A-Za-z0-9_.-]+", word) and not word.startswith("-"):
        return word
    return quote_text(word)
