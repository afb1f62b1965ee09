"""Facts about the store that need no database library: vocabularies, ids, hashing.

Kept free of SQLAlchemy on purpose: the fast read path (`engram list`, the proxy's
recall) imports this module but not the ORM, which alone costs ~230 ms to import.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from datetime import UTC, datetime
from enum import StrEnum


class Kind(StrEnum):
    """What a memory is; shown to the analyzer and used as a recall prior."""

    PREFERENCE = "preference"
    DECISION = "decision"
    FACT = "fact"
    PROCEDURE = "procedure"
    GOTCHA = "gotcha"


class MemoryStatus(StrEnum):
    ACTIVE = "active"
    SUPERSEDED = "superseded"
    FORGOTTEN = "forgotten"
    # Quarantined by the analyzer's guard (engram/analyzer/policy.py): never recalled,
    # injected or mirrored until `engram review accept` makes it active.
    REVIEW = "review"


class Action(StrEnum):
    """What an event records."""

    ADD = "add"
    EDIT = "edit"
    SUPERSEDE = "supersede"
    FORGET = "forget"
    RESTORE = "restore"
    INJECT = "inject"
    IMPORT = "import"
    QUARANTINE = "quarantine"  # held for review, with the reasons
    ACCEPT = "accept"  # `engram review accept`
    REJECT = "reject"  # `engram review reject`


class ExchangeStatus(StrEnum):
    """A journaled exchange's place in the analysis pipeline."""

    PENDING = "pending"
    ANALYZED = "analyzed"
    SKIPPED = "skipped"
    FAILED = "failed"


class OutboxStatus(StrEnum):
    """A queued mirror operation."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class MirrorState(StrEnum):
    """What MuninnDB holds for one local memory (`mirror_ids.state`)."""

    NONE = "none"  # nothing yet (perhaps a remember intent)
    ACTIVE = "active"
    FORGOTTEN = "forgotten"  # soft-deleted there, restorable for 7 days
    # A forget or restore of the copy was sent and its outcome is not recorded (the sync
    # died or never heard back): the copy may be active or soft-deleted.
    IN_DOUBT = "in_doubt"


KINDS = tuple(Kind)
STATUSES = tuple(MemoryStatus)
ACTIONS = tuple(Action)

MAX_CONTENT_CHARS = 4000

# Alembic revisions in order. tests/test_store_migrations.py checks this against the
# scripts in migrations/versions, so the fast path can tell "up to date", "needs an
# upgrade" and "written by a newer engram" apart without importing Alembic.
REVISIONS = ("0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009")
HEAD = REVISIONS[-1]

ID_PREFIX = "m-"
ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
ID_LENGTH = 8
MIN_PREFIX = 4


def new_id() -> str:
    """A short random id: 8 base32 characters (40 bits), like git's short hashes."""
    n = secrets.randbits(5 * ID_LENGTH)
    chars = []
    for _ in range(ID_LENGTH):
        chars.append(ID_ALPHABET[n & 31])
        n >>= 5
    return ID_PREFIX + "".join(chars)


def normalize_id_prefix(text: str) -> str:
    """Accept `m-3f9k`, `3f9k` or `M-3F9K`; return the id prefix with the `m-`."""
    text = text.strip().lower()
    if text.startswith(ID_PREFIX):
        text = text[len(ID_PREFIX) :]
    return ID_PREFIX + text


_WS = re.compile(r"\s+")


def normalize_content(text: str) -> str:
    """The form two memories are compared in: NFKC, case-folded, whitespace collapsed,
    trailing sentence punctuation dropped. "Use pnpm." and "use  pnpm" are the same fact.
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _WS.sub(" ", text).strip()
    return text.rstrip(" .!;")


def content_hash(text: str) -> str:
    return hashlib.sha256(normalize_content(text).encode("utf-8")).hexdigest()[:32]


def now_iso() -> str:
    """UTC timestamps as sortable ISO 8601 text with a Z, microsecond precision."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    """Read an ISO 8601 timestamp (as written by now_iso, or any offset form); naive = UTC."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def to_iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
