"""A raw TCP stand-in for an upstream that misbehaves at the byte level.

`LLMStub` is a well-behaved HTTP server; this one is a loopback socket server that reads
one request and then plays a script of byte-level steps, so a test can produce exactly
the failures a real network gives a proxy: headers and then a reset, half a
`Content-Length` body and then a reset, a stream cut mid-event, a stall. It records every
request it read and when each client connection was closed from the other side (a proxy
that gives up on its upstream promptly shows up here).

    with RawUpstream([Send(HEAD_SSE), Send(event), Reset()]) as up:
        ... point the proxy at up.url ...
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Send:
    data: bytes


@dataclass(frozen=True)
class Reset:
    """Close with SO_LINGER 0: the peer gets a TCP RST (ECONNRESET)."""


@dataclass(frozen=True)
class Close:
    """An orderly close (FIN) at this point, whatever the framing promised."""


@dataclass(frozen=True)
class Stall:
    """Send nothing more; wait until the peer closes (or the server stops)."""


@dataclass(frozen=True)
class Pause:
    seconds: float


Step = Send | Reset | Close | Stall | Pause


@dataclass
class Connection:
    request: bytes = b""
    peer_closed_at: float | None = None  # monotonic time the other side closed
    done: threading.Event = field(default_factory=threading.Event)


def http_head(
    status: int = 200, headers: Sequence[tuple[str, str]] = (), reason: str = "OK"
) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


SSE_HEAD = http_head(200, [("Content-Type", "text/event-stream"), ("Transfer-Encoding", "chunked")])


def _read_request(conn: socket.socket) -> bytes:
    """One HTTP request: the head, then a Content-Length body (chunked requests unused)."""
    data = b""
    while b"\r\n\r\n" not in data:
        part = conn.recv(65536)
        if not part:
            return data
        data += part
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        part = conn.recv(65536)
        if not part:
            break
        rest += part
    return head + b"\r\n\r\n" + rest


class RawUpstream:
    """Serves every connection with the same script, from a daemon thread per connection."""

    def __init__(self, script: Sequence[Step]) -> None:
        self.script = list(script)
        self.connections: list[Connection] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, name="raw-upstream", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def start(self) -> RawUpstream:
        self._accept.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._sock.close()
        for thread in [self._accept, *self._threads]:
            thread.join(timeout=5)

    def __enter__(self) -> RawUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        self._sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            record = Connection()
            self.connections.append(record)
            thread = threading.Thread(target=self._play, args=(conn, record), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _play(self, conn: socket.socket, record: Connection) -> None:
        try:
            record.request = _read_request(conn)
            for step in self.script:
                if isinstance(step, Send):
                    conn.sendall(step.data)
                elif isinstance(step, Pause):
                    time.sleep(step.seconds)  # the time itself is the subject here
                elif isinstance(step, Reset):
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    conn.close()
                    return
                elif isinstance(step, Close):
                    conn.shutdown(socket.SHUT_RDWR)
                    conn.close()
                    return
                elif isinstance(step, Stall):
                    self._wait_for_peer(conn, record)
                    conn.close()
                    return
            self._wait_for_peer(conn, record)
            conn.close()
        except OSError:
            record.peer_closed_at = record.peer_closed_at or time.monotonic()
        finally:
            record.done.set()

    def _wait_for_peer(self, conn: socket.socket, record: Connection) -> None:
        conn.settimeout(0.05)
        while not self._stop.is_set():
            try:
                if conn.recv(65536) == b"":
                    break
            except TimeoutError:
                continue
            except OSError:
                break
        else:
            return
        record.peer_closed_at = time.monotonic()


@contextlib.contextmanager
def raw_upstream(script: Sequence[Step]) -> Iterator[RawUpstream]:
    with RawUpstream(script) as server:
        yield server
