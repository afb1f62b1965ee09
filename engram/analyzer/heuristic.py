"""The heuristic analyzer: offline, free, rule-based memories for when no model is set up.

It answers in the same command grammar as the LLM analyzer (`engram add --kind K
--scope S "fact"`), so both go through one parser and validator. It only trusts two
kinds of evidence:

- the user's own words (harness blocks, engram's injected block, code blocks, quoted
  lines and pasted logs removed), read by the sentence rules in `heuristic_rules`:
  explicit "remember that X", stated conventions and preferences, and corrections;
- shell commands: a command that failed and a later variant of it that succeeded
  (`npm install` -> `pnpm install`) make a gotcha.

Assistant text is never a source: the assistant speculates, and a memory built on its
guesses would be repeated back to it as truth. Without a model there is no judgement,
so every rule errs towards saying nothing; see `heuristic_rules` for the filters.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any

from engram.analyzer import heuristic_rules as rules
from engram.wire.text import is_preamble, user_words

NAME = "heuristic"

MIN_CHARS, MAX_CHARS = 12, 300
MAX_COMMAND = 200
# A message longer than this is pasted material or a generated prompt (a sub-agent task,
# a slash command), whose "always"/"never" are not the user's: only explicit requests
# to remember count there.
LONG_MESSAGE = 3000
MAX_SENTENCE = 600


@dataclass(frozen=True)
class Fact:
    """One memory: its sentence, kind, scope, and `evidence` (the rule that fired)."""

    text: str
    kind: str
    scope: str  # "global" | "project"
    evidence: str = ""


def analyze(conversations: Sequence[Mapping[str, Any]]) -> list[str]:
    """Command lines for the facts in `conversations`, in the LLM analyzer's grammar."""
    return [render(fact) for fact in extract(conversations)]


def render(fact: Fact) -> str:
    """`engram add ...` with the fact quoted so that `shlex.split` returns it verbatim.
    Double quotes read best; text a shell would expand or that holds quotes gets
    single-quoted (`shlex.quote`), which is also safe if someone pastes the line."""
    text = fact.text
    quoted = f'"{text}"' if not re.search(r'["\\$`!]', text) else shlex.quote(text)
    return f"engram add --kind {fact.kind} --scope {fact.scope} {quoted}"


def extract(conversations: Sequence[Mapping[str, Any]]) -> list[Fact]:
    """The facts in a batch of conversation deltas, without duplicates."""
    facts: list[Fact] = []
    seen: set[str] = set()
    if not isinstance(conversations, Sequence | Iterator):
        return facts
    for conversation in conversations:
        if not isinstance(conversation, Mapping):
            continue
        project = conversation.get("project")
        has_project = isinstance(project, str) and bool(project.strip())
        turns = conversation.get("turns")
        if not isinstance(turns, Sequence) or isinstance(turns, str | bytes):
            continue
        turns = [t for t in turns if isinstance(t, Mapping)]
        found: list[tuple[str, str, str, str]] = []
        for text in _user_messages(turns):
            for hit in _message_hits(text):
                found.append((hit.text, hit.kind, hit.scope, hit.evidence))
        for text in _command_facts(turns):
            found.append((text, "gotcha", "", "command-fix"))
        for text, kind, scope, evidence in found:
            text = _finish(text)
            key = _dedupe_key(text) if text else ""
            if not text or key in seen:
                continue
            seen.add(key)
            scope = (scope or "project") if has_project else "global"
            facts.append(Fact(text, kind, scope, evidence))
    return facts


def _finish(text: str) -> str | None:
    """A capitalised sentence ending in a period, or None if it cannot be a memory."""
    text = " ".join(text.split()).rstrip(" ,;:")
    text = re.sub(r"(?:[,\s]+(?:please|thanks|thank you|thx|ty|by the way|btw))+[.!]*$", "", text,
                  flags=re.I)
    text = re.sub(r"[.!\s]+$", "", text)
    if not text:
        return None
    first = text.split(" ", 1)[0]
    text = (text if rules.keeps_case(first) else text[0].upper() + text[1:]) + "."
    if not MIN_CHARS <= len(text) <= MAX_CHARS or "[REDACTED" in text:
        return None
    if "engram-memory" in text.casefold():
        return None
    return text


def _dedupe_key(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


# --- the user's words --------------------------------------------------------------------

# Messages an agent sends in the user's name: compaction summaries (which quote the user,
# already seen), local-command caveats, and slash commands (the rest of that message is
# the command's expanded prompt, not something the user just said).
_HARNESS_MESSAGES = re.compile(
    r"^(?:This session is being continued from a previous conversation"
    r"|Caveat: The messages below were generated by the user)|<command-name>"
)
_HARNESS_TAGS = (
    "command-message", "command-args", "command-stdout", "local-command-stdout",
    "local-command-stderr", "bash-input", "bash-stdout", "bash-stderr", "ide_opened_file",
    "ide_selection", "ide_diagnostics", "user-prompt-submit-hook", "task-notification",
)
_INTERRUPTED = re.compile(r"^\[Request interrupted[^\]\n]*\]\s*$", re.M)
_CODEX_IDE = "## My request for Codex:"  # Codex IDE: open tabs and files come first
_BULLET = re.compile(r"^\s*(?:[-*+\u2022]|\d{1,2}[.)])\s+")
_LIST_HEADER = re.compile(
    r"^(?:please\s+)?(?:remember|note for the future|for future reference|keep in mind)"
    r"(?:\s+(?:this|these|the following))?\s*:\s*$",
    re.I,
)
_QUOTED = re.compile(r'"[^"\n]{0,400}"|\u201c[^\u201d\n]{0,400}\u201d')
_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
_ABBREVIATION = re.compile(r"(?:\be\.g|\bi\.e|\betc|\bvs|\bcf)\.$", re.I)


def _user_messages(turns: Sequence[Mapping[str, Any]]) -> Iterator[str]:
    """What the user typed in each user turn; harness and tool material left out."""
    for turn in turns:
        text = turn.get("text")
        if turn.get("role") != "user" or not isinstance(text, str) or not text.strip():
            continue
        if is_preamble(text):
            continue
        words = user_words(text)
        if _HARNESS_MESSAGES.search(words):
            continue
        if _CODEX_IDE in words:
            words = words[words.rindex(_CODEX_IDE) + len(_CODEX_IDE):]
        # Claude Code's "#" shortcut: the user asking for a memory in so many words.
        words = words.replace("<user-memory-input>", "\nRemember: ").replace(
            "</user-memory-input>", "\n"
        )
        if words := _INTERRUPTED.sub("", _drop_tags(words)).strip():
            yield words


def _drop_tags(text: str) -> str:
    """Remove Claude Code's local-command blocks (`<bash-stdout>...`); linear in `text`."""
    if "<" not in text:
        return text
    for name in _HARNESS_TAGS:
        opener, closer = f"<{name}>", f"</{name}>"
        pieces, pos = [], 0
        while (start := text.find(opener, pos)) >= 0:
            end = text.find(closer, start)
            if end < 0:
                break
            pieces.append(text[pos:start])
            pos = end + len(closer)
        text = "".join(pieces) + text[pos:]
    return text


def _prose(text: str) -> str:
    """The message without code blocks, quoted lines, indented (pasted) lines and bullet
    markers; items under a "Remember:" header become "Remember: item" lines."""
    text = "\n".join(text.split("```")[0::2])  # an unclosed fence hides the rest
    lines: list[str] = []
    in_list = False
    for line in text.split("\n"):
        if line.startswith(("    ", "\t", ">", "$ ")):
            continue
        bullet = _BULLET.match(line)
        stripped = line[bullet.end():] if bullet else line.strip()
        if _LIST_HEADER.match(stripped):
            in_list = True
            continue
        if in_list and bullet:
            stripped = "Remember: " + stripped
        elif stripped:
            in_list = False
        lines.append(stripped)
    return "\n".join(lines)


def _mask(text: str) -> str:
    """Blank out multi-word quoted text (same length, so offsets still match)."""
    def blank(m: re.Match[str]) -> str:
        inner = m.group()[1:-1]
        if " " not in inner:
            return m.group()
        return m.group()[0] + "\u2591" * len(inner) + m.group()[-1]

    return _QUOTED.sub(blank, text)


def _sentences(text: str, masked: str) -> Iterator[tuple[str, str]]:
    """Sentences (and lines) of `text` with their masked twins, split on the masked copy
    so that a period inside a quotation does not end a sentence."""
    start = 0
    for m in _SPLIT.finditer(masked):
        if m.group().strip() == "" and "\n" not in m.group() and _ABBREVIATION.search(
            masked[max(start, m.start() - 5):m.start()]
        ):
            continue
        if m.start() > start:
            yield text[start:m.start()], masked[start:m.start()]
        start = m.end()
    if start < len(text):
        yield text[start:], masked[start:]


def _message_hits(text: str) -> Iterator[rules.Hit]:
    """The facts in one user message. A message that opens with "no,"/"actually" makes
    its first sentences corrections, so "No. The port is 5433." is read as one."""
    prose = _prose(text)
    masked = _mask(prose)
    explicit_only = len(prose) > LONG_MESSAGE
    corrective = False
    for index, (sentence, msentence) in enumerate(_sentences(prose, masked)):
        if index == 0:
            corrective = rules.opens_with_correction(msentence)
        if len(sentence) > MAX_SENTENCE:
            continue
        yield from rules.sentence_hits(
            sentence, msentence, corrective=corrective and index < 3, explicit_only=explicit_only
        )


# --- failed command, then the variant that worked -----------------------------------------

_EDIT_TOOL = re.compile(r"edit|write|patch|replace|create|insert|notebook|delete|move", re.I)
_REJECTED = re.compile(
    r"doesn't want to proceed|tool use was rejected|was interrupted|Request interrupted", re.I
)
_EXIT_CODE = re.compile(
    r"(?im)^(?:error:\s*)?(?:exit code:?|process exited with code|exit status)\s*(-?\d+)"
    r"|\"exit_code\"\s*:\s*(-?\d+)|returned non-zero exit status (\d+)"
)
_ERROR_MARK = re.compile(
    r"(?m)command not found|^Traceback \(most recent call last\)|npm ERR!|ERR_PNPM"
    r"|^(?:error|fatal|Error|ERROR)(?:\[\w+\])?:|^\w+(?:Error|Exception): "
    r"|No such file or directory|is not recognized as"
)
# Errors about how a command was invoked, as opposed to what it found (failing tests,
# lint findings): only these make a changed argument list a fix.
_INVOCATION = re.compile(
    r"command not found|\bnot found\b|No such file or directory|No module named|ModuleNotFound"
    r"|unrecogni[sz]ed (?:argument|option)|unknown (?:option|command|flag|argument)"
    r"|invalid (?:option|choice|argument)|^usage:|ERR!|ERESOLVE|ENOENT|ERR_PNPM"
    r"|permission denied|is not recognized|not installed|externally-managed-environment"
    r"|requires python|could not find|cannot find|no rule to make target|missing required"
    r"|no upstream|did you mean",
    re.I | re.M,
)
_EXCEPTION_LINE = re.compile(r"^\w+(?:Error|Exception)\b.*:")
_ERROR_LINE = re.compile(r"\b(?:error|fatal|ERR!|failed|not found|denied)\b", re.I)
_SHELLS = ("bash", "sh", "zsh", "/bin/bash", "/bin/sh", "/bin/zsh", "/usr/bin/bash")
_EXPLORE = frozenset(
    "ls cat head tail grep rg ag find fd which type echo printf pwd wc less more file stat "
    "tree env printenv whoami uname date diff du df ps jq sed awk sort uniq cut true".split()
)
_GIT_READ = frozenset("status log diff show branch remote rev-parse blame ls-files".split())
_WRAPPERS = frozenset("uv poetry pdm hatch pipenv rye pipx bundle pnpm yarn npm bun".split())
_JS = frozenset("npm pnpm yarn bun".split())
_PY = re.compile(r"^python(?:\d+(?:\.\d+)?)?$")
_PIP = re.compile(r"^pip(?:\d+(?:\.\d+)?)?$")
_PATHLIKE = re.compile(r"/|\.[A-Za-z]{1,5}$")
_EDIT = object()  # an event that changed files: a fix after it may be the edit's doing


@dataclass(frozen=True, slots=True)
class _Run:
    command: str
    outcome: str  # "ok" | "fail" | "unknown"
    output: str  # head and tail of the output, enough to find the error


def _command_facts(turns: Sequence[Mapping[str, Any]]) -> Iterator[str]:
    """Gotchas from a failed shell command followed by a variant of it that succeeded.

    Pairing is deliberately narrow: a file edit in between, or a successful command
    that may have changed state (an install, a migration), ends the chance of a pair,
    because then the variant may have worked only thanks to that.
    """
    pending: list[_Run] = []
    for event in _shell_events(turns):
        if not isinstance(event, _Run):
            pending.clear()
            continue
        if event.outcome == "fail":
            if _pairable(event.command):
                pending = [*pending[-9:], event]
            continue
        if event.outcome != "ok":
            continue
        failed = next((a for a in pending if _pairable(event.command) and _fixes(a, event)), None)
        if failed is not None:
            pending.clear()
            if fact := _gotcha(failed, event):
                yield fact
        elif not _read_only(event.command):
            pending.clear()


def _shell_events(turns: Sequence[Mapping[str, Any]]) -> Iterator[_Run | object]:
    """Shell runs with their outcome, and `_EDIT` for file-changing tool calls, in order.
    Results are matched by call id wherever they ride (user turns or `tool` turns)."""
    results: dict[str, Mapping[str, Any]] = {}
    for turn in turns:
        for result in _items(turn.get("tool_results")):
            if isinstance(result.get("call_id"), str):
                results[result["call_id"]] = result
    for turn in turns:
        for call in _items(turn.get("tool_calls")):
            command = _command_of(call.get("arguments"))
            if command is None:
                name = call.get("name")
                if isinstance(name, str) and _EDIT_TOOL.search(name) and "todo" not in name.lower():
                    yield _EDIT
                continue
            call_id = call.get("id")
            result = results.get(call_id) if isinstance(call_id, str) else None
            outcome, output = _outcome(result)
            yield _Run(command, outcome, output)


def _items(value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, list | tuple):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def _command_of(arguments: Any) -> str | None:
    """The shell command in a tool call's arguments (any tool with a `command`)."""
    if isinstance(arguments, str):
        if len(arguments) > 20_000 or ("command" not in arguments and "cmd" not in arguments):
            return None
        try:
            arguments = json.loads(arguments)
        except (ValueError, RecursionError):
            return None
    if not isinstance(arguments, Mapping):
        return None
    command = arguments.get("command", arguments.get("cmd"))
    if isinstance(command, list) and command and all(isinstance(c, str) for c in command):
        if len(command) == 3 and command[0] in _SHELLS and command[1].startswith("-"):
            command = command[2]
        else:
            command = shlex.join(command)
    return command.strip() if isinstance(command, str) and command.strip() else None


def _outcome(result: Mapping[str, Any] | None) -> tuple[str, str]:
    """"ok", "fail" or "unknown", and the output. An exit code, where the agent states one,
    wins over `is_error`; a rejected or interrupted call did not run, so it is unknown."""
    if result is None:
        return "unknown", ""
    content = result.get("content")
    content = content if isinstance(content, str) else ""
    if len(content) > 8000:
        content = content[:5000] + "\n" + content[-3000:]
    if content.lstrip().startswith('{"output"'):
        try:  # Codex: {"output": "...", "metadata": {"exit_code": 1, ...}}
            data = json.loads(content)
            output = data.get("output") if isinstance(data, dict) else None
            code = (data.get("metadata") or {}).get("exit_code") if isinstance(data, dict) else None
            if isinstance(output, str):
                content = f"{output}\nexit code {code}" if isinstance(code, int) else output
        except (ValueError, RecursionError, AttributeError):
            pass
    if _REJECTED.search(content):
        return "unknown", content
    if m := _EXIT_CODE.search(content):
        code = next(int(g) for g in m.groups() if g is not None)
        return ("fail" if code else "ok"), content
    if result.get("is_error") is True or _ERROR_MARK.search(content):
        return "fail", content
    return "ok", content


def _tokens(command: str) -> list[str]:
    """The first simple command's words, without `cd dir &&`, `VAR=value`, `sudo`."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    while len(words) >= 3 and words[0] == "cd" and words[2] in ("&&", ";"):
        words = words[3:]
    for i, word in enumerate(words):
        if word in ("&&", "||", ";", "|"):
            words = words[:i]
            break
    while words and (re.match(r"[A-Za-z_]\w*=", words[0]) or words[0] in ("sudo", "time", "env")):
        words = words[1:]
    return words


def _family(command: str) -> tuple[str, list[str]] | None:
    """A program and its arguments, with runners unwrapped and close relatives merged:
    `uv run pytest -q` and `python -m pytest -q` are both ("pytest", ["-q"]), `npm` and
    `pnpm` are both "js", `python3.12` is "python"."""
    words = _tokens(command)
    while words:
        head = words[0].rsplit("/", 1)[-1]
        if head == "uv" and words[1:2] == ["pip"]:
            return "pip", words[2:]
        runner = len(words) > 2 and words[1] in ("run", "exec", "dlx", "x")
        if head in _WRAPPERS and runner and not (head in _JS and words[1] == "run"):
            words = words[2:]
        elif head in ("npx", "bunx", "pnpx", "uvx") and len(words) > 1:
            words = words[1:]
        elif _PY.match(head) and len(words) > 2 and words[1] == "-m":
            words = words[2:]
        else:
            break
    if not words:
        return None
    head, rest = words[0].rsplit("/", 1)[-1], words[1:]
    if _PY.match(head):
        return "python", rest
    if _PIP.match(head):
        return "pip", rest
    if head in _JS:
        rest = rest[1:] if rest[:1] == ["run"] else rest
        return "js", ["install" if rest[:1] == ["i"] else w for w in rest[:1]] + rest[1:]
    if head == "docker-compose":
        return "docker", ["compose", *rest]
    return head, rest


def _pairable(command: str) -> bool:
    """Short, one line, printable in backticks, and not mere exploration (`ls`, `cat`)."""
    if len(command) > MAX_COMMAND or "\n" in command or "`" in command:
        return False
    family = _family(command)
    return family is not None and family[0] not in _EXPLORE


def _read_only(command: str) -> bool:
    """Whether a command surely changed nothing, so a pair may span it."""
    if re.search(r"(?<![0-9&])>(?!&)|\btee\b|\s-i\b|--in-place", command):
        return False
    for part in re.split(r"&&|\|\||;|\|", command):
        words = _tokens(part.strip()) if len(part) < 2000 else ["?"]
        if not words:
            continue
        head = words[0].rsplit("/", 1)[-1]
        if head == "cd" or head in _EXPLORE or "--version" in words or "--help" in words:
            continue
        if head == "git" and words[1:2] and words[1] in _GIT_READ:
            continue
        return False
    return True


def _similar(a: str, b: str) -> bool:
    if min(len(a), len(b)) >= 3 and (a.startswith(b) or b.startswith(a)):
        return True
    return SequenceMatcher(None, a, b).ratio() >= 0.6


def _fixes(failed: _Run, run: _Run) -> bool:
    """Whether `run` is a plausible fix of `failed`: the same program (or a relative)
    with the same arguments, or, when `failed` was misinvoked, a flag added or removed
    or one argument changed to a similar one."""
    a, b = _family(failed.command), _family(run.command)
    if a is None or b is None or a[0] != b[0] or _strip_cd(failed.command, run.command)[0] == (
        _strip_cd(failed.command, run.command)[1]
    ):
        return False
    (_, ra), (_, rb) = a, b
    if "--no-verify" in rb and "--no-verify" not in ra:
        return False
    if ra == rb:
        return True
    if not _INVOCATION.search(failed.output):
        return False
    sub_a = next((w for w in ra if not w.startswith("-")), None)
    sub_b = next((w for w in rb if not w.startswith("-")), None)
    if sub_a and sub_b and sub_a != sub_b and not _similar(sub_a, sub_b):
        return False
    if set(ra) < set(rb) or set(rb) < set(ra):
        return True
    diffs = [(x, y) for x, y in zip(ra, rb, strict=False) if x != y]
    if len(ra) != len(rb) or len(diffs) != 1:
        return False
    # A changed path is the agent finding its way around (`tests/a.py` -> `tests/x/a.py`).
    return not any(_PATHLIKE.search(w) for w in diffs[0]) and _similar(*diffs[0])


def _strip_cd(a: str, b: str) -> tuple[str, str]:
    """Both commands without a `cd dir && ` prefix they share (it says nothing)."""
    m = re.match(r"cd\s+\S+\s*&&\s*", a)
    if m and b.startswith(m.group()):
        return a[m.end():], b[m.end():]
    return a, b


def _error_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    lines = [line for line in lines if not _EXIT_CODE.match(line)]
    exception = [line for line in lines if _EXCEPTION_LINE.match(line)]
    line = (
        (exception[-1] if exception else None)
        or next((line for line in lines if _INVOCATION.search(line)), None)
        or next((line for line in lines if _ERROR_LINE.search(line)), None)
        or ""
    )
    line = re.sub(r"^(?:Stderr:\s*)?(?:/\S*/)?(?:ba|z)?sh:(?: line \d+:)?\s*", "", line)
    line = line.replace("`", "'").rstrip(".")
    return line if len(line) <= 120 else line[:117].rstrip() + "..."


def _gotcha(failed: _Run, run: _Run) -> str | None:
    a, b = _strip_cd(failed.command, run.command)
    error = _error_line(failed.output)
    error = f" ({error})" if error else ""
    text = f"`{a}` fails{error}; use `{b}` instead"
    return text if len(text) < MAX_CHARS else None
