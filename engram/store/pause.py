"""`engram pause`: paused periods, kept in the state table so every process sees them.

A period runs from `since` until `until` (None: until `engram resume`); a timed pause
ends by itself, nothing has to run when it expires. Finished periods are kept 30 days
(at most 100): a flow that happened inside one must never be journaled later (the
watcher polls every few seconds; `engram ingest` may read an old flow file), and
`engram.journaling.withheld` checks a flow's own start time against them.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from engram.store import schema, state

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

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


UNREADABLE = "unreadable state"  # who paused, for a damaged value (see _decode)


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
        return [Period(schema.now_iso(), None, UNREADABLE)]


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
    return _decode(state.read(conn, state.PAUSE))


def read_current(conn: sqlite3.Connection) -> Period | None:
    return current(read_periods(conn))


# -- writes (an ORM session) ----------------------------------------------------------


def load(session: Session) -> list[Period]:
    """The periods, read with a plain statement in the session's transaction (every
    proxied request reads them; the ORM lookup cost ~0.3 ms). Callers load before they
    save, so no unflushed change of the session is missed."""
    from engram.store.db import raw_connection

    return read_periods(raw_connection(session))


def _save(session: Session, periods: list[Period]) -> None:
    horizon = datetime.now(UTC) - timedelta(days=KEEP_DAYS)
    kept = [p for p in periods if p.until is None or schema.parse_iso(p.until) > horizon]
    state.put(session, state.PAUSE, _encode(kept[-KEEP_PERIODS:]))


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
