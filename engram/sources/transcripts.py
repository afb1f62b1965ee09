"""Agents' transcripts as a capture source: once (`engram ingest`) or followed live.

Coding agents write every session to disk as it happens; reading those files needs no
proxy, no base-URL override and no CA, and back-fills memory from months of history.
Each file is read by its format's parser (`transcript_*.py`) into pieces of
conversation, and each piece goes to the journal through `journaling.record_pieces`, the
same path (privacy, delta, redaction, status) as a captured request: a turn the proxy or
mitmweb journaled already is not journaled again, reading a file twice adds nothing, and
`<private>` text, a paused period or an ignored project leaves no row (a file whose
project is ignored is not even read).

Reading is incremental. A file's state (`store/transcript_files.py`) says up to which
byte its pieces are journaled; it commits with them. In memory, a `_Cursor` keeps the
parser and the per-conversation occurrence counts the delta needs, so a followed file
costs only its new lines; a fresh process parses a grown file from the start once
(counting, not journaling, what is before the saved offset). A partial last line is
left for the next read; a file that shrank, changed its first bytes or its inode was
replaced or rewritten and is read again from the start.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from engram import journaling
from engram.sources.transcript_detect import (
    AGENTS,
    EXPECTED,
    FLOW,
    FORMATS,
    LABELS,
    Found,
    UnknownFormat,
    agent_files,
    agent_roots,
    detect,
    in_project,
    project_of,
    resolve,
)
from engram.sources.transcript_formats import Draft, Parser, load_record
from engram.store import transcript_files
from engram.store.db import Store
from engram.store.transcript_files import FileState

if TYPE_CHECKING:
    from engram.journaling import CapturePolicy

CHUNK = 1 << 20  # bytes read at a time
BATCH = 200  # pieces journaled per transaction (keeps the write lock short)
HEAD = 4096  # bytes hashed to recognise a rewritten file
IDLE = 600.0  # seconds after which a quiet file's parser and counts are dropped

__all__ = [
    "AGENTS",
    "EXPECTED",
    "FLOW",
    "FORMATS",
    "LABELS",
    "Found",
    "ReadStats",
    "Target",
    "TranscriptFollower",
    "TranscriptReader",
    "UnknownFormat",
    "agent_files",
    "agent_roots",
    "detect",
    "in_project",
    "project_of",
    "resolve",
]


# -- reading ------------------------------------------------------------------------


@dataclass
class ReadStats:
    """What reading did; summed over files by the callers. As the scheduler's poll
    outcome it describes one poll of every followed file."""

    files: int = 0
    lines: int = 0
    bytes: int = 0
    bad_lines: int = 0
    pieces: int = 0  # journal rows created (exchanges)
    duplicates: int = 0  # pieces the journal had already
    turns: int = 0  # new turns journaled
    withheld: int = 0  # pieces not journaled: paused, or an ignored project
    pending: int = 0  # rows that await analysis
    skipped_files: int = 0  # engram's own analyzer sessions
    open_files: int = 0  # files whose last exchange waits for the file to go quiet

    def add(self, other: ReadStats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def describe(self) -> str:
        text = (
            f"Read {self.lines} new transcript lines from {self.files} files -> "
            f"{self.pieces} exchanges, {self.turns} new turns"
        )
        extra = []
        if self.pending:
            extra.append(f"{self.pending} to analyze")
        if self.duplicates:
            extra.append(f"{self.duplicates} already journaled")
        if self.withheld:
            extra.append(f"{self.withheld} withheld (paused or an ignored project)")
        if self.bad_lines:
            extra.append(f"{self.bad_lines} unreadable lines skipped")
        return text + (" (" + ", ".join(extra) + ")" if extra else "")

    def fields(self) -> dict[str, int]:
        return {
            "files": self.files,
            "lines": self.lines,
            "captured": self.pieces,
            "turns": self.turns,
            "pending": self.pending,
            "duplicates": self.duplicates,
            "withheld": self.withheld,
            "bad_lines": self.bad_lines,
        }

    @property
    def eventful(self) -> bool:
        return bool(self.pieces or self.bad_lines)


@dataclass
class _Cursor:
    parser: Parser
    inode: int
    fed: int = 0  # bytes given to the parser
    priors: dict[str, dict[str, int]] = field(default_factory=dict)


def _head(path: Path, size: int) -> str:
    """`<n>:<hash of the first n bytes>`, n up to HEAD."""
    n = min(HEAD, size)
    with path.open("rb") as fh:
        return f"{n}:{hashlib.blake2b(fh.read(n), digest_size=16).hexdigest()}"


def _rewritten(path: Path, state: FileState, size: int, inode: int) -> bool:
    """Whether a known file is no longer the file whose state we kept."""
    if state.inode and state.inode != inode:
        return True
    if size < state.offset:
        return True
    if state.head:
        n = int(state.head.split(":", 1)[0] or 0)
        return size < n or _head(path, n) != state.head
    return False


class TranscriptReader:
    """Reads transcript files into the journal, remembering each file between reads."""

    def __init__(self, store: Store, policy: CapturePolicy, *, settle: float = 30.0) -> None:
        self.store = store
        self.policy = policy  # the config's: what must leave no row (journaling.withheld)
        self.settle = settle
        self._cursors: dict[str, _Cursor] = {}
        self._states: dict[str, FileState] | None = None

    def known(self) -> dict[str, FileState]:
        if self._states is None:
            self.store.ensure()  # a reader journals: it may create the database
            with self.store.read() as conn:
                self._states = transcript_files.load(conn)
        return self._states

    def read(
        self,
        path: Path,
        agent: str,
        *,
        final: bool = False,
        on_commit: Callable[[ReadStats], None] | None = None,
    ) -> ReadStats:
        """Journal what is new in `path`. `final`: close a last exchange that may still be
        growing (a one-off ingest of a quiet file); else only once the file is quiet."""
        key = str(path)
        stats = ReadStats()
        try:
            st = path.stat()
        except OSError:
            self._cursors.pop(key, None)
            return stats
        state = self.known().get(key) or FileState(path=key, agent=agent)
        cursor = self._cursors.get(key)
        quiet = final or time.time() - st.st_mtime >= self.settle
        same = (state.size, state.mtime_ns, state.inode) == (st.st_size, st.st_mtime_ns, st.st_ino)
        if same and (state.offset >= st.st_size or (cursor is not None and not quiet)):
            return stats  # nothing new, or only an exchange that is not finished yet
        if not same and _rewritten(path, state, st.st_size, st.st_ino):
            state.offset = 0  # replaced or rewritten: read it all; the journal drops repeats
            cursor = None
        if cursor is None or cursor.inode != st.st_ino or cursor.fed > st.st_size:
            cursor = _Cursor(FORMATS[agent].parser(path), st.st_ino)
        self._cursors[key] = cursor
        state.agent, state.size, state.mtime_ns, state.inode = (
            agent,
            st.st_size,
            st.st_mtime_ns,
            st.st_ino,
        )
        state.head = _head(path, st.st_size)
        stats.files = 1
        try:
            self._consume(path, cursor, state, stats, quiet, on_commit)
        except BaseException:
            self._cursors.pop(key, None)  # in-memory counts no longer match the database
            self._states = None
            raise
        if self._states is not None:
            self._states[key] = state
        if time.time() - st.st_mtime > IDLE and not cursor.parser.open:
            # A session nobody has touched for a while gives its memory back (a back-fill
            # reads thousands); if it grows again it is parsed from the start once.
            self._cursors.pop(key, None)
        return stats

    def _consume(
        self,
        path: Path,
        cursor: _Cursor,
        state: FileState,
        stats: ReadStats,
        quiet: bool,
        on_commit: Callable[[ReadStats], None] | None,
    ) -> None:
        drafts: list[Draft] = []
        committed_offset = state.offset

        def take(batch: list[Draft]) -> None:
            for draft in batch:
                if draft.end <= committed_offset:
                    journaling.count_piece(  # journaled by an earlier read
                        cursor.priors.setdefault(draft.conversation, {}), draft.turns
                    )
                else:
                    drafts.append(draft)
            if len(drafts) >= BATCH:
                self._commit(cursor, state, drafts, stats, None)
                drafts.clear()
                if on_commit:
                    on_commit(stats)

        quick = FORMATS[state.agent].quick
        with path.open("rb") as fh:
            fh.seek(cursor.fed)
            rest = b""
            while True:
                chunk = fh.read(CHUNK)
                if not chunk:
                    break
                data = rest + chunk
                start = 0
                while (nl := data.find(b"\n", start)) >= 0:
                    line = data[start : nl + 1]
                    start = nl + 1
                    cursor.fed += len(line)
                    if not line.strip():
                        continue
                    record = quick(line) if quick is not None else None
                    if record is None:
                        record = load_record(line)
                    if cursor.fed > committed_offset:
                        stats.lines += 1
                        stats.bytes += len(line)
                        if record is None:
                            stats.bad_lines += 1
                            state.bad_lines += 1
                    take(cursor.parser.feed(record, line, cursor.fed))
                rest = data[start:]  # a partial last line: read again next time
        flushed = False
        if quiet:
            take(cursor.parser.flush())
            flushed = True
        elif cursor.parser.open:
            stats.open_files = 1
        # Nothing held back: every line read is accounted for, the next read starts after.
        done = flushed or not cursor.parser.open
        self._commit(cursor, state, drafts, stats, cursor.fed if done else None)
        if on_commit:
            on_commit(stats)
        if cursor.parser.skipped:
            stats.skipped_files = 1

    def _commit(
        self,
        cursor: _Cursor,
        state: FileState,
        drafts: list[Draft],
        stats: ReadStats,
        consumed: int | None,
    ) -> None:
        fmt = cursor.parser
        pieces = [
            (
                journaling.Piece(
                    source="transcript",
                    source_key=draft.key,
                    conversation=draft.conversation,
                    turns=draft.turns,
                    project=draft.project,
                    model=draft.model,
                    format=fmt.format,
                    provider=fmt.provider,
                    location=state.path,
                    usage=draft.usage,
                    started_at=draft.started_at,
                    ended_at=draft.ended_at,
                    bytes=draft.bytes,
                ),
                cursor.priors.setdefault(draft.conversation, {}),
            )
            for draft in drafts
        ]
        with self.store.write() as session:
            results = journaling.record_pieces(session, pieces, self.policy) if pieces else []
            for draft, recorded in zip(drafts, results, strict=True):
                state.offset = max(state.offset, draft.end)
                if recorded is not None and recorded.withheld:
                    stats.withheld += 1  # nothing of it kept, not even its project
                    continue
                if recorded is not None and recorded.created:
                    stats.pieces += 1
                    stats.turns += recorded.new_turns
                    stats.pending += recorded.status == "pending"
                    state.pieces += 1
                    state.turns += recorded.new_turns
                else:
                    stats.duplicates += 1
                state.conversation = state.conversation or draft.conversation
                state.project = draft.project or state.project
            if consumed is not None:
                state.offset = max(state.offset, consumed)
            state.skipped = fmt.skipped
            transcript_files.save(session, state)


# -- following ----------------------------------------------------------------------


@dataclass
class Target:
    """What a follower watches: an agent's default locations, or given files/dirs."""

    agent: str | None = None  # None: `paths` are read by detection
    paths: list[Path] = field(default_factory=list)

    def files(
        self,
        overrides: dict[str, str | None] | None = None,
        known: dict[Path, str | None] | None = None,
    ) -> Iterator[tuple[Path, str]]:
        if self.agent is not None:
            for path in agent_files(self.agent, self.paths or agent_roots(self.agent, overrides)):
                yield path, self.agent
            return
        found, _ignored = resolve(self.paths, known)
        for item in found:
            if item.kind != FLOW:
                yield item.path, item.kind


class TranscriptFollower:
    """A `PollSource` (engram/sources/scheduler.py): each poll reads what is new in every
    followed transcript (new files included), so appended lines reach the journal within
    one poll interval."""

    name = "transcripts"

    def __init__(
        self,
        store: Store,
        targets: list[Target],
        policy: CapturePolicy,
        *,
        since: float | None = None,
        project: str | None = None,
        settle: float = 30.0,
        overrides: dict[str, str | None] | None = None,
        known: dict[Path, str | None] | None = None,
    ) -> None:
        self.store = store
        self.targets = targets
        self.known = {} if known is None else known  # what each file is (detection)
        self.since = since
        self.project = project
        self.overrides = overrides
        self.reader = TranscriptReader(store, policy, settle=settle)
        self.last = ReadStats()
        self._projects: dict[str, str | None] = {}

    def files(self) -> list[tuple[Path, str]]:
        """The files to read now, oldest first (a back-fill journals in time order)."""
        chosen: dict[Path, tuple[float, str]] = {}
        for target in self.targets:
            for path, agent in target.files(self.overrides, self.known):
                try:
                    mtime = path.stat().st_mtime
                except OSError:
                    continue
                if self.since is not None and mtime < self.since:
                    continue
                if self.project is not None and not in_project(
                    self._project(path, agent), self.project
                ):
                    continue
                if self.reader.policy.ignore_projects and self.reader.policy.ignores(
                    self._project(path, agent)
                ):
                    continue  # capture.ignore_projects: not read at all
                chosen[path] = (mtime, agent)
        return [(p, a) for p, (_m, a) in sorted(chosen.items(), key=lambda kv: kv[1][0])]

    def _project(self, path: Path, agent: str) -> str | None:
        key = str(path)
        if key not in self._projects:
            self._projects[key] = project_of(path, agent)
        return self._projects[key]

    def read_all(
        self, *, final: bool = False, progress: Callable[[Path, ReadStats], None] | None = None
    ) -> ReadStats:
        total = ReadStats()
        for path, agent in self.files():
            stats = self.reader.read(path, agent, final=final)
            total.add(stats)
            if progress is not None:
                progress(path, total)
        self.last = total
        return total

    def poll(self) -> ReadStats:
        return self.read_all()
