"""The proxy's capture spool: a finished exchange survives a kill -9 without waiting for SQLite.

A response's last bytes used to wait for its exchange's journal commit (~2 ms on an idle
proxy: the ORM session, parsing, redaction, the commit; far more behind a busy writer),
so that a kill -9 right after the agent has its answer loses nothing. Now the proxy
appends the exchange to this spool instead (one `writev(2)` of the bodies as they are,
~20-60 us for a 75 KB request) and releases the bytes at once; the writer thread
journals it as before, off the request path, and the spool is emptied once everything
in it is committed. What a writev(2) put in the page cache survives the death of the
process that wrote it, so a proxy killed before its writer committed leaves its
exchanges here, and the next proxy on the same database journals them when it starts
(`adopt_dead`, `CaptureWriter._adopt`), under the keys they were given at capture:
exactly once, whether or not the dead one had committed them.

Privacy: the spool holds traffic before redaction, so it lives only in RAM-backed
storage (`$XDG_RUNTIME_DIR`, else `/dev/shm`), in a 0700 directory of the user's, files
0600, credential headers dropped, and only for the milliseconds until the commit;
where no such place exists (macOS), the proxy keeps the old way (the last bytes wait
for the commit). A power loss empties RAM, as it may also lose SQLite's last commits
under `synchronous=NORMAL`; a clean stop drains the writer first.

Bounded (`MAX_SPOOL_BYTES`): a writer that keeps failing does not grow the spool past
it; past it, the last bytes wait for the commit again. A failed commit does not pin the
file: the writer retries what failed (capture_writer.py) and the file empties once the
retry commits; an exchange the journal refuses for good is moved to this directory's
`quarantine.spool` (`quarantine`, shown by `engram status`) and counts as settled.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import stat
import struct
import threading
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # `engram status` reads the quarantine without the wire models
    from engram.wire.model import RawRequest, RawResponse

log = logging.getLogger("engram.proxy")

MAGIC = b"ESP1"
# magic, header length, request body length, response body length (NONE: no response), crc
_HEAD = struct.Struct("<4sIIII")
NONE = 0xFFFFFFFF
MAX_SPOOL_BYTES = 256 * 2**20
# Exchanges the journal refused for good (`quarantine`): kept for the user to read, in
# RAM like the spool, bounded so that a journal refusing everything cannot fill it.
QUARANTINE = "quarantine.spool"
MAX_QUARANTINE_BYTES = 64 * 2**20
# Never written to the spool: the journal does not need them (wire/parse.py reads none).
CREDENTIALS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "x-goog-api-key", "api-key", "cookie"}
)

# A spool file being made: not adoptable until locked and renamed to proxy-*.spool.
CREATING = "creating-"
CREATE_TRIES = 5

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)

type Item = tuple[RawRequest, RawResponse | None, str | None]


def spool_dir(db: Path, *, create: bool = True) -> Path | None:
    """This database's spool directory in RAM-backed storage (created 0700), or None where
    there is none the user alone owns (`create=False`: or none exists yet)."""
    base = os.environ.get("XDG_RUNTIME_DIR") or ""
    roots = [Path(base)] if base else []
    roots.append(Path("/dev/shm"))
    digest = hashlib.sha256(str(db.expanduser().resolve()).encode()).hexdigest()[:16]
    for root in roots:
        if not root.is_dir():
            continue
        mine = root / f"engram-{os.getuid()}" if root == Path("/dev/shm") else root / "engram"
        try:
            for d in (mine, mine / f"spool-{digest}"):
                if create:
                    with contextlib.suppress(FileExistsError):
                        d.mkdir(mode=0o700)
                st = d.lstat()  # not a symlink someone planted, and ours alone
                if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
                    raise PermissionError(f"{d} is not a private directory")
        except OSError as exc:
            log.debug("no capture spool under %s: %s", root, exc)
            continue
        return mine / f"spool-{digest}"
    return None


def new_key() -> str:
    return f"proxy:{uuid.uuid4().hex}"


def encode(key: str, item: Item, refused: str | None = None) -> list[bytes]:
    """One record, in parts for one `writev` (the bodies are not copied). `refused`: why
    the journal refused it (a quarantined record)."""
    raw, response, error = item
    head: dict[str, Any] = {
        "key": key,
        "error": error,
        "request": {
            "headers": [[k, v] for k, v in raw.headers if k.lower() not in CREDENTIALS],
            "start": raw.timestamp_start,
            "end": raw.timestamp_end,
            "method": raw.method,
            "scheme": raw.scheme,
            "host": raw.host,
            "port": raw.port,
            "path": raw.path,
            "recall": raw.recall,
            "body": raw.body is not None,
        },
        "response": None
        if response is None
        else {
            "headers": [[k, v] for k, v in response.headers],
            "start": response.timestamp_start,
            "end": response.timestamp_end,
            "status": response.status_code,
        },
    }
    if refused is not None:
        head["refused"] = refused
    header = json.dumps(head, separators=(",", ":"), default=str).encode()
    request_body = raw.body or b""
    response_body = (response.body or b"") if response is not None else b""
    crc = zlib.crc32(response_body, zlib.crc32(request_body, zlib.crc32(header)))
    sizes = (len(header), len(request_body), NONE if response is None else len(response_body))
    return [_HEAD.pack(MAGIC, *sizes, crc), header, request_body, response_body]


def decode(data: bytes) -> Iterator[tuple[str, Item]]:
    """The whole records in `data`; a torn one at the end (killed mid-write: its response
    had not reached the agent) ends the iteration."""
    from engram.wire.model import RawRequest, RawResponse

    for at, head, n_req, end in _records(data):
        req_body = data[at : at + n_req]
        r = head["request"]
        raw = RawRequest(
            headers=[(k, v) for k, v in r["headers"]],
            body=req_body if r["body"] else None,
            timestamp_start=r["start"],
            timestamp_end=r["end"],
            method=r["method"],
            scheme=r["scheme"],
            host=r["host"],
            port=r["port"],
            path=r["path"],
            recall=r["recall"],
        )
        response = None
        if head["response"] is not None:
            s = head["response"]
            response = RawResponse(
                headers=[(k, v) for k, v in s["headers"]],
                body=data[at + n_req : end],
                timestamp_start=s["start"],
                timestamp_end=s["end"],
                status_code=s["status"],
            )
        yield head["key"], (raw, response, head["error"])


def _records(data: bytes) -> Iterator[tuple[int, dict[str, Any], int, int]]:
    """Each whole record's header, where its request body starts, that body's length,
    and where the record ends (`engram status` reads only the headers)."""
    at = 0
    while at + _HEAD.size <= len(data):
        magic, n_head, n_req, n_resp, crc = _HEAD.unpack_from(data, at)
        start = at + _HEAD.size
        end = start + n_head + n_req + (0 if n_resp == NONE else n_resp)
        if magic != MAGIC or end > len(data) or zlib.crc32(data[start:end]) != crc:
            return
        yield start + n_head, json.loads(data[start : start + n_head]), n_req, end
        at = end


class Spool:
    """One proxy process's spool file, locked while the process lives (a file whose lock
    can be taken belongs to a dead proxy: `adopt_dead` hands it to the living one)."""

    def __init__(
        self, directory: Path, *, _adopt: tuple[Path, int, int, int] | None = None
    ) -> None:
        if _adopt is None:
            self.path, self._fd = _create(directory)
            self._pending = 0  # appended, not yet settled (journaled or quarantined)
            self._size = 0
        else:
            self.path, self._fd, self._size, self._pending = _adopt
        self.adopted = _adopt is not None  # a dead proxy's: removed once settled, never grown
        self._lock = threading.Lock()
        self._closed = False
        self.failed = False  # an append failed once (logged once)

    def append(self, key: str, item: Item) -> bool:
        """Spool `item`; False when it could not be (the caller waits for the commit)."""
        record = encode(key, item)
        size = sum(len(part) for part in record)
        with self._lock:
            if self._closed or self.adopted or self._size + size > MAX_SPOOL_BYTES:
                return False
            try:
                written = os.writev(self._fd, record)
            except OSError as exc:
                if not self.failed:
                    log.warning("capture spool %s: %s; journaling synchronously", self.path, exc)
                self.failed = True
                return False
            self._size += written
            if written != size:  # a short write (a full tmpfs): the tail is torn
                self._truncate_to(self._size - written)
                return False
            self._pending += 1
            return True

    @property
    def pending(self) -> int:
        return self._pending

    def journaled(self, n: int) -> None:
        """`n` spooled items are settled (committed, or quarantined); an empty backlog
        empties the file (a dead proxy's is removed)."""
        with self._lock:
            self._pending -= n
            if self._pending > 0 or self._closed:
                return
            self._pending = 0
            if self.adopted:
                self._closed = True
                with contextlib.suppress(OSError):
                    self.path.unlink()
                os.close(self._fd)
            elif self._size:
                self._truncate_to(0)

    def _truncate_to(self, size: int) -> None:
        try:
            os.ftruncate(self._fd, size)
            self._size = size
        except OSError as exc:
            log.warning("capture spool %s: cannot truncate: %s", self.path, exc)

    def close(self) -> None:
        """After the writer drained: an empty spool is removed; one holding exchanges the
        journal has not taken yet stays for the next proxy (its lock goes with the fd)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._pending <= 0:
                with contextlib.suppress(OSError):
                    self.path.unlink()
            os.close(self._fd)
        with contextlib.suppress(OSError):
            self.path.parent.rmdir()  # only when empty


def _create(directory: Path) -> tuple[Path, int]:
    """A new spool file, locked before it takes the name `adopt_dead` looks for.

    Created as `proxy-*.spool` and locked after, it was adoptable in between: a proxy
    starting at the same moment took the empty, unlocked file for a dead proxy's and
    removed it, and this one went on appending to a file with no name (lost to a kill
    -9), or failed its lock and ran without a spool. So it is created under a name
    adoption ignores (`creating-*.tmp`), locked, and renamed into place (atomic). A file
    of that name whose lock can be taken is a creator's that died or has not locked yet:
    `adopt_dead` removes it, and a creator that finds its file gone (its lock or rename
    fails) starts over under a new name (CREATE_TRIES in all)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | _CLOEXEC
    failure: OSError = FileNotFoundError(directory)
    for _ in range(CREATE_TRIES):
        name = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        temp, path = directory / f"{CREATING}{name}.tmp", directory / f"proxy-{name}.spool"
        try:
            fd = os.open(temp, flags, 0o600)
        except FileNotFoundError as exc:  # a proxy stopping removed the empty directory
            failure = exc
            with contextlib.suppress(FileExistsError):
                directory.mkdir(mode=0o700)  # in spool_dir's private parent
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(temp, path)
        except OSError as exc:  # removed as a leftover before it was locked: again
            failure = exc
            os.close(fd)
            with contextlib.suppress(OSError):
                temp.unlink()  # this process's own name: nobody else's file
            continue
        return path, fd
    raise failure


def _take(path: Path, flags: int) -> int | None:
    """`path` opened and locked by this process, when no live process holds it and it
    is still the file of that name; else None."""
    try:
        fd = os.open(path, flags | _CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino != path.stat().st_ino:
            raise FileNotFoundError(path)  # removed or renamed meanwhile
    except OSError:  # a live process holds it
        os.close(fd)
        return None
    return fd


def _remove_leftovers(directory: Path) -> None:
    """Remove the `creating-*.tmp` files of creators that died before renaming theirs
    (empty: nothing is appended before the rename). One whose lock is held is a live
    creator's and stays; one not locked yet is removed, and its creator starts over."""
    for temp in directory.glob(f"{CREATING}*.tmp"):
        fd = _take(temp, os.O_RDONLY)
        if fd is not None:
            with contextlib.suppress(OSError):
                temp.unlink()
            os.close(fd)


def adopt_dead(directory: Path) -> Iterator[tuple[Spool, list[tuple[str, Item]]]]:
    """The spools dead proxies left in `directory`, each locked by this process and with
    the exchanges it holds: the caller journals them (exactly once: under their own keys)
    and settles them with `Spool.journaled`, which removes the file. A live proxy's
    (locked) file is left alone; so is an adopted one this process dies holding: the
    next proxy adopts it again, and the keys make journaling it twice harmless. Files a
    creator left half made (`_create`) are removed."""
    _remove_leftovers(directory)
    for path in sorted(directory.glob("proxy-*.spool")):
        fd = _take(path, os.O_RDWR)  # None: its proxy is alive, or another adopted it
        if fd is None:
            continue
        try:
            with os.fdopen(os.dup(fd), "rb") as f:
                data = f.read()
        except OSError:
            os.close(fd)
            continue
        items = list(decode(data))
        spool = Spool(directory, _adopt=(path, fd, len(data), len(items)))
        if not items:
            spool.journaled(0)  # nothing whole in it (torn): removed
        yield spool, items


def quarantine(directory: Path, key: str, item: Item, reason: str) -> Path | None:
    """Keep an exchange the journal refused for good in `directory`'s quarantine file
    (the spool's format, with the reason; 0600, appended whole by one `writev`); None
    when it could not be (no room under MAX_QUARANTINE_BYTES, or the write failed)."""
    path = directory / QUARANTINE
    record = encode(key, item, refused=reason)
    size = sum(len(part) for part in record)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | _CLOEXEC, 0o600)
    except OSError:
        return None
    try:
        if os.fstat(fd).st_size + size > MAX_QUARANTINE_BYTES:
            return None
        if os.writev(fd, record) != size:
            return None
        return path
    except OSError:
        return None
    finally:
        os.close(fd)


def quarantined(db: Path) -> dict[str, Any] | None:
    """What `engram status` says about `db`'s quarantine file: where it is, how many
    exchanges it holds and the last one's reason; None when there is none."""
    directory = spool_dir(db, create=False)
    path = directory / QUARANTINE if directory is not None else None
    try:
        data = path.read_bytes() if path is not None else b""
    except OSError:
        return None
    heads = [head for _, head, _, _ in _records(data)]
    if path is None or not heads:
        return None
    return {"path": str(path), "exchanges": len(heads), "last_reason": heads[-1].get("refused")}
