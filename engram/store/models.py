"""ORM models. The schema itself is owned by the Alembic migrations in migrations/;
these classes mirror it for reads and writes through SQLAlchemy sessions.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Memory(Base):
    __tablename__ = "memories"

    # An explicit INTEGER PRIMARY KEY keeps rowids stable across VACUUM, which the
    # external-content FTS5 index (memories_fts) relies on.
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    id: Mapped[str] = mapped_column(String(16), unique=True)
    content: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(128))
    provenance: Mapped[str] = mapped_column(Text, server_default=text("'[]'"))
    status: Mapped[str] = mapped_column(String(16), server_default=text("'active'"))
    superseded_by: Mapped[str | None] = mapped_column(ForeignKey("memories.id"))
    created_at: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[str] = mapped_column(String(32))
    use_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_used_at: Mapped[str | None] = mapped_column(String(32))
    content_hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_memories_scope_status", "scope", "status"),
        Index("ix_memories_created", "created_at"),
    )


class Event(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16))
    memory_id: Mapped[str | None] = mapped_column(ForeignKey("memories.id"))
    actor: Mapped[str] = mapped_column(String(128))
    detail: Mapped[str] = mapped_column(Text, server_default=text("'{}'"))

    __table_args__ = (Index("ix_events_memory", "memory_id", "id"),)


class ExchangeRow(Base):
    """A captured exchange in the journal (see migrations/versions/0002_journal.py)."""

    __tablename__ = "exchanges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(16))
    source_key: Mapped[str] = mapped_column(Text, unique=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    format: Mapped[str] = mapped_column(String(24))
    provider: Mapped[str] = mapped_column(String(24), default="")
    host: Mapped[str] = mapped_column(Text, default="")
    endpoint: Mapped[str] = mapped_column(Text, default="")
    model: Mapped[str | None] = mapped_column(Text)
    conversation: Mapped[str] = mapped_column(Text, default="")
    project: Mapped[str | None] = mapped_column(Text)
    status_code: Mapped[int | None] = mapped_column(Integer)
    stream: Mapped[bool] = mapped_column(Boolean, default=False)
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[str | None] = mapped_column(String(32))
    ended_at: Mapped[str | None] = mapped_column(String(32))
    captured_at: Mapped[str] = mapped_column(String(32))
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cache_read_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cache_creation_tokens: Mapped[int] = mapped_column(Integer, default=0)
    request_bytes: Mapped[int] = mapped_column(Integer, default=0)
    response_bytes: Mapped[int] = mapped_column(Integer, default=0)
    new_turns: Mapped[int] = mapped_column(Integer, default=0)
    turns: Mapped[str] = mapped_column(Text, default="[]")
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    analyzed_at: Mapped[str | None] = mapped_column(String(32))
    analysis_error: Mapped[str | None] = mapped_column(Text)
    recall: Mapped[str | None] = mapped_column(Text)  # JSON: recall/audit.py (0006)


class Conversation(Base):
    __tablename__ = "conversations"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    project: Mapped[str | None] = mapped_column(Text)
    seen: Mapped[str] = mapped_column(Text, default="{}")
    exchanges: Mapped[int] = mapped_column(Integer, default=0)
    first_at: Mapped[str] = mapped_column(String(32))
    last_at: Mapped[str] = mapped_column(String(32))


class StateRow(Base):
    """Small durable values: watcher cursors, one-time warnings already given, ..."""

    __tablename__ = "state"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[str] = mapped_column(String(32))


class AnalyzerRun(Base):
    """One analyzer call: what it cost and what it changed (see 0003_analyzer.py)."""

    __tablename__ = "analyzer_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[str] = mapped_column(String(32))
    ended_at: Mapped[str] = mapped_column(String(32))
    backend: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(Text, default="")
    prompt_version: Mapped[str] = mapped_column(String(32), default="")
    project: Mapped[str | None] = mapped_column(Text)
    exchanges: Mapped[str] = mapped_column(Text, default="[]")
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cache_read_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cache_creation_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    commands: Mapped[int] = mapped_column(Integer, default=0)
    added: Mapped[int] = mapped_column(Integer, default=0)
    superseded: Mapped[int] = mapped_column(Integer, default=0)
    forgotten: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    ignored: Mapped[int] = mapped_column(Integer, default=0)
    # The analyzer's guard (0008_review.py): over the per-conversation cap, global
    # memories kept in the project, memories held for review.
    capped: Mapped[int] = mapped_column(Integer, default=0)
    rescoped: Mapped[int] = mapped_column(Integer, default=0)
    quarantined: Mapped[int] = mapped_column(Integer, default=0)


class MemoryVector(Base):
    """A memory's embedding for recall (see 0004_vectors.py and engram/recall/index.py)."""

    __tablename__ = "memory_vectors"

    memory_id: Mapped[str] = mapped_column(ForeignKey("memories.id"), primary_key=True)
    model: Mapped[str] = mapped_column(Text)
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32 LE, L2-normalized
    content_hash: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[str] = mapped_column(String(32))


class MirrorOp(Base):
    """One memory change waiting for (or done by) the MuninnDB mirror (0005_mirror.py)."""

    __tablename__ = "mirror_outbox"
    # Row ids are part of MuninnDB op_ids: never reused (the migration says AUTOINCREMENT).
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    memory_id: Mapped[str] = mapped_column(String(16))
    op: Mapped[str] = mapped_column(String(16))
    payload: Mapped[str] = mapped_column(Text, default="{}")
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[str] = mapped_column(String(32))
    done_at: Mapped[str | None] = mapped_column(String(32))


class MirrorId(Base):
    """What MuninnDB holds for one local memory: vault, id, text hash, state, intent."""

    __tablename__ = "mirror_ids"

    memory_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    vault: Mapped[str] = mapped_column(Text)
    muninn_id: Mapped[str | None] = mapped_column(Text)
    synced_at: Mapped[str | None] = mapped_column(String(32))
    content_hash: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="none")
    forgotten_at: Mapped[str | None] = mapped_column(String(32))
    intent: Mapped[str | None] = mapped_column(Text)


class TranscriptFile(Base):
    """How far one agent transcript file is journaled (see 0007_transcripts.py)."""

    __tablename__ = "transcript_files"

    path: Mapped[str] = mapped_column(Text, primary_key=True)
    agent: Mapped[str] = mapped_column(String(16))
    conversation: Mapped[str | None] = mapped_column(Text)
    project: Mapped[str | None] = mapped_column(Text)
    offset: Mapped[int] = mapped_column(Integer, default=0)
    size: Mapped[int] = mapped_column(Integer, default=0)
    mtime_ns: Mapped[int] = mapped_column(Integer, default=0)
    inode: Mapped[int] = mapped_column(Integer, default=0)
    head: Mapped[str] = mapped_column(String(64), default="")
    pieces: Mapped[int] = mapped_column(Integer, default=0)
    turns: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[str | None] = mapped_column(Text)
    bad_lines: Mapped[int] = mapped_column(Integer, default=0)
    first_at: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[str] = mapped_column(String(32))
