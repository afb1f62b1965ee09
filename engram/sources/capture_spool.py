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
(`recover`), under the keys they were given at capture: exactly once, whether or not
the dead one had committed them.

Privacy: the spool holds traffic before redaction, so it lives only in RAM-backed
storage (`$XDG_RUNTIME_DIR`, else `/dev/shm`), in a 0700 directory of the user's, files
0600, credential headers dropped, and only for the milliseconds until the commit;
where no such place exists (macOS), the proxy keeps the old way (the last bytes wait
for the commit). A power loss empties RAM, as it may also lose SQLite's last commits
under `synchronous=NORMAL`; a clean stop drains the writer first.

Bounded (`MAX_SPOOL_BYTES`): a writer that keeps failing does not grow the spool past
it; past it, the last bytes wait for the commit again.
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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from engram.wire.model import RawRequest, RawResponse

log = logging.getLogger("engram.proxy")

MAGIC = b"ESP1"
# magic, header length, request body length, response body length (NONE: no response), crc
_HEAD = struct.Struct("<4sIIII")
NONE = 0xFFFFFFFF
MAX_SPOOL_BYTES = 256 * 2**20
# Never written to the spool: the journal does not need them (wire/parse.py reads none).
CREDENTIALS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "x-goog-api-key", "api-key", "cookie"}
)

Item = tuple[RawRequest, "RawResponse | None", "str | None"]


def spool_dir(db: Path) -> Path | None:
    """This database's spool directory in RAM-backed storage (created 0700), or None where
    there is none the user alone owns."""
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


def encode(key: str, item: Item) -> list[bytes]:
    """One record, in parts for one `writev` (the bodies are not copied)."""
    raw, response, error = item
    head = {
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
    header = json.dumps(head, separators=(",", ":"), default=str).encode()
    request_body = raw.body or b""
    response_body = (response.body or b"") if response is not None else b""
    crc = zlib.crc32(response_body, zlib.crc32(request_body, zlib.crc32(header)))
    sizes = (len(header), len(request_body), NONE if response is None else len(response_body))
    return [_HEAD.pack(MAGIC, *sizes, crc), header, request_body, response_body]


def decode(data: bytes) -> Iterator[tuple[str, Item]]:
    """The whole records in `data`; a torn one at the end (killed mid-write: its response
    had not reached the agent) ends the iteration."""
    at = 0
    while at + _HEAD.size <= len(data):
        magic, n_head, n_req, n_resp, crc = _HEAD.unpack_from(data, at)
        start = at + _HEAD.size
        end = start + n_head + n_req + (0 if n_resp == NONE else n_resp)
        if magic != MAGIC or end > len(data) or zlib.crc32(data[start:end]) != crc:
            return
        head = json.loads(data[start : start + n_head])
        req_body = data[start + n_head : start + n_head + n_req]
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
                body=data[start + n_head + n_req : end],
                timestamp_start=s["start"],
                timestamp_end=s["end"],
                status_code=s["status"],
            )
        yield head["key"], (raw, response, head["error"])
        at = end


class Spool:
    """One proxy process's spool file, locked while the process lives (a file whose lock
    can be taken belongs to a dead proxy: `recover` journals it)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / f"proxy-{os.getpid()}-{uuid.uuid4().hex[:8]}.spool"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        self._fd = os.open(self.path, flags, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._lock = threading.Lock()
        self._pending = 0  # appended, not yet journaled
        self._size = 0
        self._closed = False
        self.failed = False  # an append failed once (logged once)

    def append(self, key: str, item: Item) -> bool:
        """Spool `item`; False when it could not be (the caller waits for the commit)."""
        record = encode(key, item)
        size = sum(len(part) for part in record)
        with self._lock:
            if self._closed or self._size + size > MAX_SPOOL_BYTES:
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

    def journaled(self, n: int) -> None:
        """`n` spooled items are committed; an empty backlog empties the file."""
        with self._lock:
            self._pending -= n
            if self._pending <= 0 and self._size and not self._closed:
                self._pending = 0
                self._truncate_to(0)

    def _truncate_to(self, size: int) -> None:
        try:
            os.ftruncate(self._fd, size)
            self._size = size
        except OSError as exc:
            log.warning("capture spool %s: cannot truncate: %s", self.path, exc)

    def close(self) -> None:
        """After the writer drained: an empty spool is removed; one holding exchanges the
        journal refused stays for the next proxy's `recover`."""
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


def recover(directory: Path, capture: Callable[[list[tuple[str, Item]]], Any]) -> int:
    """Journal what dead proxies left in `directory` (exactly once: under their own keys)
    and remove their files; a live proxy's (locked) file is left alone."""
    done = 0
    for path in sorted(directory.glob("proxy-*.spool")):
        try:
            fd = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if os.fstat(fd).st_ino != path.stat().st_ino:
                    continue
            except OSError:  # its proxy is alive, or another proxy recovered it first
                continue
            with os.fdopen(os.dup(fd), "rb") as f:
                data = f.read()
            items = list(decode(data))
            for i in range(0, len(items), 100):
                capture(items[i : i + 100])
            done += len(items)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        finally:
            os.close(fd)
    if done:
        log.info("journaled %d exchanges a stopped proxy had spooled", done)
    return done
