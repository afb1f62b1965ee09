"""Recognising agents' transcripts and finding them: which format a file is in, where
each agent keeps its sessions, and which project a session ran in.

A file is recognised by its first records, not its name (a user may pass a copy from
a backup, a flow file may have any suffix): each format's `sniff` looks at a record,
the most specific first. A file named on the command line that is none of them is an
error naming what was expected; inside a directory it is counted and left alone.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from engram.errors import EngramError
from engram.sources import transcript_claude, transcript_codex, transcript_gemini
from engram.sources.transcript_formats import TranscriptFormat, load_record

FORMATS: dict[str, TranscriptFormat] = {
    "claude": TranscriptFormat(
        "claude",
        "Claude Code",
        transcript_claude.ClaudeParser,
        transcript_claude.sniff,
        transcript_claude.quick,
    ),
    "codex": TranscriptFormat(
        "codex", "Codex", transcript_codex.CodexParser, transcript_codex.sniff
    ),
    "gemini": TranscriptFormat(
        "gemini", "Gemini CLI", transcript_gemini.GeminiParser, transcript_gemini.sniff_gemini
    ),
    "qwen": TranscriptFormat(
        "qwen", "Qwen Code", transcript_gemini.QwenParser, transcript_gemini.sniff_qwen
    ),
}
AGENTS = tuple(FORMATS)
FLOW = "flow"
LABELS = {FLOW: "mitmproxy flow file", **{k: f"{f.label} transcript" for k, f in FORMATS.items()}}
EXPECTED = "a mitmproxy flow file, or a Claude Code, Codex, Gemini CLI or Qwen Code transcript"

_FLOW_MAGIC = re.compile(rb"^\d{1,10}:[{\[,0-9]")  # a tnetstring: mitmproxy's flow files
_SNIFF_ORDER = ("codex", "gemini", "qwen", "claude")  # most specific test first


# -- recognising files --------------------------------------------------------------


class UnknownFormat(EngramError):
    """A file given by name is none of the formats engram reads."""


def detect(path: Path) -> str | None:
    """`flow`, an agent name, or None: what the file's first bytes say it is."""
    try:
        with path.open("rb") as fh:
            head = fh.read(64 * 1024)
            if b"\n" not in head:  # one long first line: read on, within reason
                head += fh.read(1024 * 1024)
    except OSError:
        return None
    if _FLOW_MAGIC.match(head):
        return FLOW
    lines = head.split(b"\n")
    if len(lines) > 1:
        lines = lines[:-1]  # the last one may be cut by the read
    for line in lines[:20]:
        record = load_record(line) if line.strip() else None
        if not isinstance(record, dict):
            if line.strip():
                return None  # not JSON lines
            continue
        for name in _SNIFF_ORDER:
            if FORMATS[name].sniff(record):
                return name
    return _by_location(path) if not head.strip() else None


def _by_location(path: Path) -> str | None:
    """An empty file in an agent's own directory is that agent's (just created)."""
    text = path.as_posix()
    for marker, agent in (
        ("/.claude/projects/", "claude"),
        ("/.codex/", "codex"),
        ("/.gemini/tmp/", "gemini"),
        ("/.qwen/projects/", "qwen"),
    ):
        if marker in text and path.suffix == ".jsonl":
            return agent
    return None


@dataclass(frozen=True)
class Found:
    path: Path
    kind: str  # FLOW or an agent name


def resolve(
    paths: Iterable[Path], known: dict[Path, str | None] | None = None
) -> tuple[list[Found], int]:
    """What to read for `engram ingest PATH...`: every named file must be understood
    (else UnknownFormat, before anything is read); a directory contributes the files in
    it that are (the rest are counted and left alone). `known` remembers what each file
    was found to be, so a follower re-walking a directory reads only new files' heads."""
    known = {} if known is None else known
    found: list[Found] = []
    ignored = 0
    for path in paths:
        path = path.expanduser()
        if path.is_dir():
            for file in _walk(path):
                kind = _kind(file, known)
                if kind is None:
                    ignored += 1
                else:
                    found.append(Found(file, kind))
            continue
        if not path.exists():
            raise EngramError(f"{path}: no such file or directory")
        kind = _kind(path, known)
        if kind is None:
            raise UnknownFormat(
                f"{path}: not a format engram reads (expected {EXPECTED})",
                hint="see docs/transcripts.md for where each agent keeps its sessions",
            )
        found.append(Found(path, kind))
    return found, ignored


def _kind(path: Path, known: dict[Path, str | None]) -> str | None:
    if path in known:
        return known[path]
    kind = detect(path)
    if kind is not None or path.stat().st_size > 0:  # an empty file may become one
        known[path] = kind
    return kind


def _walk(root: Path) -> Iterator[Path]:
    stack = [root]
    while stack:
        try:
            entries = sorted(os.scandir(stack.pop()), key=lambda e: e.name, reverse=True)
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
            elif entry.is_file():
                yield Path(entry.path)


# -- where agents keep them ---------------------------------------------------------


def agent_roots(agent: str, overrides: dict[str, str | None] | None = None) -> list[Path]:
    """The directories an agent writes its sessions to (honouring its own variables)."""
    override = (overrides or {}).get(agent)
    if override:
        return [Path(override).expanduser()]
    env, home = os.environ, Path.home()
    if agent == "claude":
        base = Path(env["CLAUDE_CONFIG_DIR"]) if env.get("CLAUDE_CONFIG_DIR") else home / ".claude"
        return [base / "projects"]
    if agent == "codex":
        base = Path(env["CODEX_HOME"]) if env.get("CODEX_HOME") else home / ".codex"
        return [base / "sessions", base / "archived_sessions"]
    if agent == "gemini":
        base = Path(env["GEMINI_CLI_HOME"]) if env.get("GEMINI_CLI_HOME") else home
        return [base / ".gemini" / "tmp"]
    if agent == "qwen":
        base = Path(env["QWEN_HOME"]) if env.get("QWEN_HOME") else home / ".qwen"
        return [base / "projects"]
    raise EngramError(f"unknown agent {agent!r} (one of: {', '.join(AGENTS)})")


_AGENT_GLOBS = {
    "claude": ("*/*.jsonl", "*/*/subagents/*.jsonl"),
    "codex": ("**/rollout-*.jsonl",),
    "gemini": ("*/chats/*.jsonl",),
    "qwen": ("*/chats/*.jsonl",),
}


def agent_files(agent: str, roots: list[Path]) -> Iterator[Path]:
    for root in roots:
        if root.is_dir():
            for pattern in _AGENT_GLOBS[agent]:
                yield from root.glob(pattern)


def project_of(path: Path, agent: str) -> str | None:
    """The working directory a session ran in, from its first records (for --project)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(256 * 1024)
    except OSError:
        return None
    parser = FORMATS[agent].parser(path)
    end = 0
    for line in head.split(b"\n")[:-1]:
        end += len(line) + 1
        for draft in parser.feed(load_record(line), line, end):
            if draft.project:
                return draft.project
        project = getattr(parser, "project", None)
        if project:
            return str(project)
    for draft in parser.flush():
        if draft.project:
            return draft.project
    return None


def in_project(project: str | None, wanted: str) -> bool:
    if not project:
        return False
    wanted = wanted.rstrip("/") or "/"
    return project == wanted or project.startswith(wanted + "/")
