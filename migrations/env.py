"""Alembic environment. engram runs migrations itself (engram.store.db) and hands the
open connection over in `config.attributes["connection"]`; `alembic` on the command
line (for writing new revisions) gets a URL from ENGRAM_DB instead.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine

from engram.store.models import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    url = "sqlite:///" + os.environ.get("ENGRAM_DB", "engram-dev.db")
    with create_engine(url).connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run()
