"""Opening a second Store on a database this process already uses must not cost writes.

POSIX locks belong to the process: closing any descriptor of the file drops all of them.
If opening a Store read the file's header with open()/close() (as it once did), a
process with a live connection (the web UI, which runs doctor's checks in-process,
or a long-lived CLI test harness) lost its shared lock; another process closing its
last connection then took itself for the only user, checkpointed and deleted the WAL,
and this process's next commits went into the deleted file: gone, and "database disk
image is malformed" soon after.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from engram.store.db import Store


def other_process(db: Path, sql: str) -> str:
    code = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        f"print(c.execute({sql!r}).fetchone()[0]); c.close()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(db)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_second_store_in_the_process_keeps_the_wal_alive(tmp_path: Path) -> None:
    db = tmp_path / "engram.db"
    first = Store(db)
    first.ensure()
    with first.write() as session:  # the ORM engine: WAL, a pooled connection stays open
        session.execute(text("CREATE TABLE t (x)"))
    live = sqlite3.connect(db, isolation_level=None)  # a connection kept open, as a server does
    live.execute("INSERT INTO t VALUES (1)")

    second = Store(db)  # e.g. doctor's database check inside `engram ui`
    second.ensure()
    assert other_process(db, "SELECT count(*) FROM t") == "1"  # opens and closes its own

    live.execute("INSERT INTO t VALUES (2)")
    assert Path(str(db) + "-wal").exists()
    assert other_process(db, "SELECT count(*) FROM t") == "2"  # the write is not lost
    live.close()
    first.close()
    second.close()
    assert other_process(db, "PRAGMA integrity_check") == "ok"
