"""The heuristic analyzer's command rule: a shell command that failed, then the variant
of it that worked (`npm install` -> `pnpm install`), makes a gotcha.

Failure is read from exit codes where the agent reports them, else from error markers;
a fix must be the same program after unwrapping runners (`uv run`, `npx`, `sudo`, ...),
and only counts after an invocation error when its arguments changed. Pairs are never
made across a file edit or a state-changing command in between.
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

MAX_COMMAND = 200  # longer commands are scripts, not something to remember verbatim

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
    r"|no upstream|did you mean|(?:failed to|could not|cannot|unable to) resolve",
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


def command_facts(turns: Sequence[Mapping[str, Any]]) -> Iterator[str]:
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
            found = results.get(call_id) if isinstance(call_id, str) else None
            outcome, output = _outcome(found)
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
    """ "ok", "fail" or "unknown", and the output. An exit code, where the agent states one,
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
    if (
        a is None
        or b is None
        or a[0] != b[0]
        or _strip_cd(failed.command, run.command)[0] == (_strip_cd(failed.command, run.command)[1])
    ):
        return False
    (_, ra), (_, rb) = a, b
    if "--no-verify" in rb and "--no-verify" not in ra:
        return False
    # Only an error about how or where a command ran makes another way of running it the
    # fix: after a failing test or a lint finding, a later success (same arguments under
    # `uv run`, a flag added) says the code or the state changed in between, not that the
    # first way is wrong.
    if not _INVOCATION.search(failed.output):
        return False
    if ra == rb:
        return True
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
        return a[m.end() :], b[m.end() :]
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
    return text if len(text) < rules.MAX_CHARS else None
