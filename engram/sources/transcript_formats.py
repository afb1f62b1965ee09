"""Agents' own transcripts, read as pieces of conversation: the shapes every format
parser shares, the parsers' registry, and recognising which format a file is in.

A transcript is a log an agent appends to as a session runs (JSON lines, one record a
line). A parser is fed the records in file order and hands back `Draft`s: a piece of
one conversation that ends with a complete assistant message (the turns since the
previous piece, then the reply), which is the unit a request/response pair is on the
wire. The journal then treats a piece like a captured request (`journaling.record_piece`):
only turns the conversation has not seen, through any door, are journaled.

A parser knows where each piece ends in the file (`Draft.end`), so a reader can persist
"everything before this byte is journaled" and carry on from there after a restart.
What it cannot know is whether the last assistant message in the file is complete
(Claude Code writes a message's blocks as separate lines); `flush()` closes whatever is
open, and the reader calls it only once the file has been quiet for a while.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from engram.paths import is_engram_internal_project
from engram.wire.block import remove_block
from engram.wire.model import Format, Turn, Usage


@dataclass
class Draft:
    """A piece of one conversation, read from a transcript, ready for the journal."""

    conversation: str
    turns: list[Turn]
    end: int  # byte offset just after the piece's last line
    key: str  # stable id of the piece: the same piece read again has the same key
    project: str | None = None
    model: str | None = None
    usage: Usage = field(default_factory=Usage)
    started_at: float | None = None
    ended_at: float | None = None
    bytes: int = 0


class Parser(Protocol):
    """Turns one transcript file's records into pieces. Stateful: one per file."""

    format: Format  # the API format the agent's messages are written in
    provider: str

    def feed(self, record: Any, line: bytes, end: int) -> list[Draft]:
        """Take the next record (`line` is its raw text, ending at byte `end`); return
        the pieces it completed."""
        ...

    def flush(self) -> list[Draft]:
        """Close what is still open (the file has gone quiet, or it is read once)."""
        ...

    @property
    def skipped(self) -> str | None:
        """Why this file's conversations are not journaled (engram's own analyzer
        sessions), or None."""
        ...

    @property
    def open(self) -> bool:
        """Whether turns are held back that `flush()` would journal."""
        ...


@dataclass(frozen=True)
class TranscriptFormat:
    """One agent's transcript format: how to recognise a file and read it."""

    name: str  # the --agent name: claude, codex, gemini, qwen
    label: str  # what the user calls the agent
    parser: Callable[[Path], Parser]
    sniff: Callable[[dict[str, Any]], bool]  # does this first record belong to us?
    # A record for a line that need not be decoded (it cannot matter), else None.
    quick: Callable[[bytes], Any] | None = None


_ISO_FRACTION = re.compile(r"(\.\d{6})\d+")


def timestamp(value: Any) -> float | None:
    """An ISO 8601 timestamp (`2026-12-06T11:10:03.102Z`) as seconds; None if unusable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        text = _ISO_FRACTION.sub(r"\1", value.replace("Z", "+00:00"))
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def line_key(agent: str, conversation: str, line: bytes) -> str:
    """A piece's stable id: its conversation and a hash of its last line (which carries
    the record's own id and timestamp), so the same piece read again from a moved or
    copied file is recognised, and a piece is never confused with another."""
    digest = hashlib.blake2b(line.strip(), digest_size=12).hexdigest()
    return f"{agent}:{conversation}:{digest}"


def clean_turn(turn: Turn) -> Turn:
    """A turn as a transcript source journals it: engram's own block removed from the
    text (a hook that printed memories into the session, a quoted block)."""
    if "<engram-memory" not in turn.text:
        return turn
    return Turn(turn.role, remove_block(turn.text), turn.tool_calls, turn.tool_results)


class ParserBase:
    """What every parser shares: whether the file is engram's own (skipped)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._skipped: str | None = None

    @property
    def skipped(self) -> str | None:
        return self._skipped

    def note_project(self, cwd: object) -> None:
        """A session in engram's own analyzer directory is engram talking to itself."""
        if isinstance(cwd, str) and cwd and is_engram_internal_project(cwd):
            self._skipped = "a session in engram's own analyzer directory"


class Span:
    """Where a piece under construction starts and ends, and what it weighs."""

    __slots__ = ("bytes", "ended_at", "first", "last", "started_at")

    def __init__(self) -> None:
        self.bytes = 0
        self.first: bytes | None = None
        self.last = b""
        self.started_at: float | None = None
        self.ended_at: float | None = None

    def add(self, line: bytes, at: float | None) -> None:
        self.bytes += len(line)
        self.last = line
        if self.first is None:
            self.first = line
        if at is not None:
            self.started_at = self.started_at if self.started_at is not None else at
            self.ended_at = at


def load_record(line: bytes) -> Any:
    """One JSON line; None if it is not JSON (a corrupt line is skipped, not fatal)."""
    try:
        return json.loads(line)
    except (ValueError, RecursionError):
        return None
