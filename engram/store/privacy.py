"""What the journal must not keep: paused periods and ignored projects.

`journal.record()` asks `withheld()` about every capture from every source (mitmweb
watcher, proxy, addon, flow files, transcripts), so a rule here holds for all of them.
A withheld exchange leaves no journal row, no text and no metadata.

Pause. `engram pause [--for 30m]` writes a period to the state table, so every
process sees it at its next capture (the proxy, the watcher and the addon run in
different processes). A capture is withheld when engram is paused *now*, or when the
flow itself happened inside a paused period (its request's start time): the watcher
polls every few seconds and `engram ingest` may read an old flow file, and neither may
record what was said while paused. Finished periods are kept for 30 days (at most 100)
for that reason. A timed pause ends by itself: nothing has to run when it expires.

While paused, the turns of a conversation still advance its seen-counts (one-way
hashes, no text): otherwise the agent's next request after `engram resume`, which
repeats the whole history, would bring the paused turns into the journal after all.

Ignored projects. `capture.ignore_projects` holds globs matched against the project
directory an exchange belongs to (see `CapturePolicy.ignores`). An exchange whose
project is unknown is not matched by any pattern.
"""

from __future__ import annotations

import fnmatch
import json
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from engram.store import schema

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

PAUSE_KEY = "capture:pause"
KEEP_DAYS = 30
KEEP_PERIODS = 100


@dataclass(frozen=True, slots=True)
class Period:
    """One pause: from `start` until `until` (None: until `engram resume`)."""

    start: str
    until: str | None = None
    by: str = "cli"

    def covers(self, when: datetime) -> bool:
        if when < schema.parse_iso(self.start):
            return False
        return self.until is None or when < schema.parse_iso(self.until)

    def to_dict(self) -> dict[str, str | None]:
        return {"since": self.start, "until": self.until, "by": self.by}


def _decode(raw: str | None) -> list[Period]:
    if not raw:
        return []
    try:
        data = json.loads(raw)
        return [
            Period(str(p["since"]), p.get("until"), str(p.get("by", "cli")))
            for p in data.get("periods", [])
        ]
    except (ValueError, TypeError, KeyError, AttributeError):
        # A damaged value must not stop capture, nor be read as "not paused" forever:
        # it reads as one open pause, which `engram resume` replaces.
        return [Period(schema.now_iso(), None, "unreadable state")]


def _encode(periods: list[Period]) -> str:
    return json.dumps({"periods": [p.to_dict() for p in periods]}, separators=(",", ":"))


def current(periods: list[Period], now: datetime | None = None) -> Period | None:
    """The pause in force at `now`, if any."""
    now = now or datetime.now(UTC)
    for period in reversed(periods):
        if period.covers(now):
            return period
    return None


def covers(periods: list[Period], when: datetime) -> bool:
    return any(p.covers(when) for p in periods)


# -- reads (the plain sqlite3 connection: `engram status`, recall) -------------------


def read_periods(conn: sqlite3.Connection) -> list[Period]:
    row = conn.execute("SELECT value FROM state WHERE key = ?", (PAUSE_KEY,)).fetchone()
    return _decode(row[0] if row else None)


def read_current(conn: sqlite3.Connection) -> Period | None:
    return current(read_periods(conn))


# -- writes (an ORM session) ----------------------------------------------------------


def load(session: Session) -> list[Period]:
    from engram.store.models import StateRow

    row = session.get(StateRow, PAUSE_KEY)
    return _decode(row.value if row is not None else None)


def _save(session: Session, periods: list[Period]) -> None:
    from engram.store.models import StateRow

    horizon = datetime.now(UTC) - timedelta(days=KEEP_DAYS)
    kept = [p for p in periods if p.until is None or schema.parse_iso(p.until) > horizon]
    value = _encode(kept[-KEEP_PERIODS:])
    row = session.get(StateRow, PAUSE_KEY)
    if row is None:
        session.add(StateRow(key=PAUSE_KEY, value=value, updated_at=schema.now_iso()))
    else:
        row.value = value
        row.updated_at = schema.now_iso()


def pause(session: Session, duration: timedelta | None = None, *, by: str = "cli") -> Period:
    """Pause capture and analysis now, for `duration` or until `resume`. Pausing while
    paused replaces the end of the pause in force (a new --for counts from now)."""
    now = datetime.now(UTC)
    until = schema.to_iso(now + duration) if duration is not None else None
    periods = load(session)
    active = current(periods, now)
    if active is not None:
        periods[periods.index(active)] = updated = Period(active.start, until, by)
    else:
        updated = Period(schema.to_iso(now), until, by)
        periods.append(updated)
    _save(session, periods)
    return updated


def resume(session: Session) -> Period | None:
    """End the pause in force; return it as it was (None: nothing was paused)."""
    now = datetime.now(UTC)
    periods = load(session)
    active = current(periods, now)
    if active is None:
        return None
    periods[periods.index(active)] = Period(active.start, schema.to_iso(now), active.by)
    _save(session, periods)
    return active


# -- the capture decision -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CapturePolicy:
    """What a source must not journal, from `[capture]` in the config. Every source
    passes one to `journal.record()`; the pause is read from the database there."""

    ignore_projects: tuple[str, ...] = ()

    @classmethod
    def from_patterns(cls, patterns: list[str] | tuple[str, ...]) -> CapturePolicy:
        return cls(tuple(p for p in (_normal_pattern(p) for p in patterns) if p))

    def ignores(self, project: str | None) -> bool:
        """Whether `project` (a directory) matches an ignore pattern.

        - A pattern without a slash is matched against each directory name in the
          path: `secret-*` ignores `/work/secret-api` and `/work/secret-api/web`.
        - A pattern with a slash is matched against the whole path and each of its
          parent directories, so a directory covers everything below it: `~/clients/*`
          and `~/clients/acme` both ignore `~/clients/acme/api`. `~` is the home
          directory; a relative pattern (`clients/acme`) matches at any depth.

        Matching is case-sensitive, `*` crosses `/`, and `\\` in a project path
        counts as `/` (Windows agents).
        """
        if not project or not self.ignore_projects:
            return False
        path = project.replace("\\", "/").rstrip("/") or "/"
        names = [n for n in path.split("/") if n]
        ancestors = [path]
        parent = path
        while "/" in parent.strip("/"):
            parent = parent.rsplit("/", 1)[0] or "/"
            ancestors.append(parent)
        for pattern in self.ignore_projects:
            if "/" not in pattern:
                if any(fnmatch.fnmatchcase(n, pattern) for n in names):
                    return True
            elif any(fnmatch.fnmatchcase(a, pattern) for a in ancestors):
                return True
        return False


def _normal_pattern(pattern: str) -> str:
    pattern = pattern.strip()
    if not pattern:
        return ""
    pattern = os.path.expanduser(pattern).replace("\\", "/")
    if pattern != "/":
        pattern = pattern.rstrip("/")
    if "/" in pattern and not pattern.startswith(("/", "*")) and pattern[1:3] != ":/":
        pattern = "*/" + pattern
    return pattern


def withheld(
    session: Session, project: str | None, started_at: float | None, policy: CapturePolicy
) -> str | None:
    """Why a capture must leave no trace ("ignored project", "paused"), or None."""
    if policy.ignores(project):
        return "ignored project"
    periods = load(session)
    if not periods:
        return None
    now = datetime.now(UTC)
    if current(periods, now) is not None:
        return "paused"
    if started_at is not None:
        try:
            when = datetime.fromtimestamp(started_at, UTC)
        except (OverflowError, OSError, ValueError):
            return None
        if covers(periods, when):
            return "paused"
    return None
