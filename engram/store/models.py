"""ORM models. The schema itself is owned by the Alembic migrations in migrations/;
these classes mirror it for reads and writes through SQLAlchemy sessions.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, Integer, String, Text, text
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
