"""Opening the database: checks, permissions, migrations, connections.

Two ways in, both to the same file:
- `Store.write()` — a SQLAlchemy ORM session in a `BEGIN IMMEDIATE` transaction. Taking
  the write lock up front means two engram processes queue on SQLite's busy timeout
  instead of failing with "database is locked" on a lock upgrade mid-transaction.
- `Store.read()` — a plain `sqlite3` connection for hot read paths, which cannot
  afford the ORM's import cost (~230 ms) on every `engram list` or proxied request.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from engram.errors import EngramError
from engram.paths import make_private_dir
from engram.store import schema

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session


class DatabaseLocked(EngramError):
    pass


class NoDatabase(EngramError):
    """A read found no database: reading never creates one (a mistyped --db or ENGRAM_DB
    must not leave empty databases and directories behind)."""


def is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "database is locked" in text or "database table is locked" in text


def is_full_error(exc: BaseException) -> bool:
    """SQLITE_FULL: the disk (or its quota) has no room for the write."""
    return "database or disk is full" in str(exc).lower()


class DiskFull(EngramError):
    pass


class Store:
    """One engram database file. Cheap to construct; touches the disk on first use."""

    def __init__(self, path: str | Path, busy_timeout_ms: int = 5000) -> None:
        self.path = Path(path).expanduser().absolute()
        self.busy_timeout_ms = busy_timeout_ms
        self._ready = False
        self._engine: Engine | None = None

    # -- opening ------------------------------------------------------------------

    def ensure(self) -> None:
        """Create the file if needed and bring its schema to head. Idempotent."""
        if self._ready:
            return
        self._check_file()
        revision = self._revision()
        if revision != schema.HEAD:
            if revision is not None and revision not in schema.REVISIONS:
                raise EngramError(
                    f"database {self.path} has schema revision {revision}, newer than this "
                    f"engram knows (up to {schema.HEAD})",
                    hint="upgrade engram, or point --db at another file",
                )
            self.upgrade()
        self._ready = True

    def _check_file(self) -> None:
        path = self.path
        if path.is_dir():
            raise EngramError(f"database path {path} is a directory")
        if path.exists():
            if not os.access(path, os.R_OK):
                raise EngramError(f"cannot read database {path}: permission denied")
            self._probe()
            if not os.access(path, os.W_OK):
                raise EngramError(f"database {path} is not writable")
            return
        try:
            make_private_dir(path.parent)
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            os.close(fd)
        except FileExistsError:
            pass  # another process created it a moment ago
        except PermissionError:
            raise EngramError(f"cannot create database {path}: permission denied") from None
        except OSError as exc:
            raise EngramError(f"cannot create database {path}: {exc.strerror}") from None

    def _probe(self) -> None:
        """Refuse a file that is not SQLite, asking SQLite rather than reading the header
        with open(): closing any descriptor of the file drops every POSIX lock this
        process holds on it, so another process closing its last connection would think
        itself the only user and delete the WAL under this process's open connections
        (their later commits then vanish; seen as lost writes and "database disk image is
        malformed" when `engram ui` ran doctor). SQLite keeps its descriptors open until
        that is safe. `immutable` reads the file itself (not a WAL that may still hold a
        valid page 1 of a file since overwritten) and takes no locks; a non-database is
        only read, never written."""
        conn = sqlite3.connect(self.path.as_uri() + "?immutable=1", uri=True)
        try:
            conn.execute("PRAGMA schema_version").fetchone()
        except sqlite3.DatabaseError as exc:
            if is_lock_error(exc):
                return  # a database, busy: _revision() waits for it
            if "not a database" in str(exc):  # SQLITE_NOTADB
                raise EngramError(
                    f"{self.path} is not a SQLite database; refusing to touch it",
                    hint="point --db or ENGRAM_DB at an engram database",
                ) from None
            raise EngramError(f"{self.path} is not a usable SQLite database: {exc}") from None
        finally:
            conn.close()

    def _revision(self) -> str | None:
        conn = self._raw_connect()
        try:
            tables = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            if "alembic_version" not in tables:
                if tables - {"sqlite_sequence"}:
                    raise EngramError(
                        f"{self.path} is a SQLite database but not engram's; refusing to touch it"
                    )
                return None
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            return row[0] if row else None
        except sqlite3.DatabaseError as exc:
            if is_lock_error(exc):
                raise self.locked_error() from None
            if is_full_error(exc) or self._disk_full():
                # Opening in WAL mode needs room for the -shm/-wal files: on a full disk
                # SQLite says "disk I/O error", which would read as a corrupt database.
                raise DiskFull(
                    f"the disk holding {self.path} is full: cannot open the database",
                    hint="free some space and start again",
                ) from None
            raise EngramError(f"{self.path} is not a usable SQLite database: {exc}") from None
        finally:
            conn.close()

    def _disk_full(self) -> bool:
        import shutil

        try:
            return shutil.disk_usage(self.path.parent).free < 64 * 1024
        except OSError:
            return False

    def current_revision(self) -> str | None:
        self._check_file()
        return self._revision()

    def upgrade(self) -> None:
        """Apply Alembic migrations up to head, under the write lock (one process at a time)."""
        from alembic import command
        from alembic.config import Config as AlembicConfig

        # Imported by name: the package is mapped from the top-level migrations/ at build
        # time (pyproject's package-dir), which static analysis cannot follow.
        migrations = importlib.import_module("engram.migrations")

        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(Path(str(migrations.__file__)).parent))
        with self.engine.begin() as conn:
            # Another process may have finished the upgrade while we waited for the lock.
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    # -- connections --------------------------------------------------------------

    def _raw_connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout_ms / 1000)
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A short-lived read connection with dict-like rows. Never creates the database:
        if there is none yet, NoDatabase says so (writes create it)."""
        if not self._ready and not self.path.exists():
            raise NoDatabase(
                f"no engram database at {self.path}",
                hint="nothing has been stored there yet: `engram add`, `engram run <agent>` "
                "or a capture creates it; or point --db / ENGRAM_DB at your database",
            )
        self.ensure()
        conn = self._raw_connect()
        conn.row_factory = sqlite3.Row
        try:
            yield conn
        except sqlite3.OperationalError as exc:
            if is_lock_error(exc):
                raise self.locked_error() from None
            raise
        finally:
            conn.close()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = _make_engine(self.path, self.busy_timeout_ms)
        return self._engine

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """An ORM session in one IMMEDIATE transaction, committed on success."""
        from sqlalchemy.exc import OperationalError
        from sqlalchemy.orm import Session

        self.ensure()
        try:
            with Session(self.engine, expire_on_commit=False) as session, session.begin():
                yield session
        except OperationalError as exc:
            if is_lock_error(exc):
                raise self.locked_error() from None
            if is_full_error(exc):
                raise DiskFull(
                    f"the disk holding {self.path} is full: nothing new can be recorded",
                    hint="free some space; the transaction was rolled back, and sources "
                    "offer what they had not journaled again",
                ) from None
            raise

    def locked_error(self) -> DatabaseLocked:
        return DatabaseLocked(
            f"database {self.path} is locked by another process "
            f"(waited {self.busy_timeout_ms / 1000:g} s)",
            hint="raise store.busy_timeout_ms or retry",
        )

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def _make_engine(path: Path, busy_timeout_ms: int) -> Engine:
    from sqlalchemy import create_engine, event

    engine = create_engine(
        f"sqlite:///{path}",
        connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event, not the driver, decide how transactions start.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def raw_connection(session: Session) -> sqlite3.Connection:
    """The sqlite3 connection under a write session, inside its transaction.

    For the statements every proxied request runs (journaling an exchange): through the
    ORM (a query, an identity-map lookup, a unit-of-work flush at commit) they cost
    ~1 ms of the thread a response's last byte waits for; as plain statements on the
    same connection and transaction, ~0.1 ms. Only for rows the session does not also
    hold as ORM objects (the ORM would not see these writes).
    """
    return cast(sqlite3.Connection, session.connection().connection.driver_connection)


def affected(result: Any) -> int:
    """Rows changed by an UPDATE/INSERT/DELETE executed through a Session.

    `Session.execute` is typed as returning a plain `Result`; for DML it is a
    `CursorResult`, which has the count.
    """
    return int(getattr(result, "rowcount", 0) or 0)
