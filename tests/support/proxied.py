"""An in-process `engram proxy` for tests: a `Proxy` on a `ServerThread` that journals to
a real store, and a reader for the rows it wrote. tests/conftest.py turns it into the
`proxied` fixture (every proxy it started is stopped after the test)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from engram.journaling import CapturePolicy
from engram.sources.capture_writer import journal_capture
from engram.sources.proxy import Proxy, ProxySettings
from engram.sources.server import ServerThread


class Proxies:
    def __init__(self, store: Any) -> None:
        self.store = store
        self.servers: list[ServerThread] = []
        store.ensure()  # the journal's tables exist before anyone reads them

    def __call__(self, upstream: str, recall: Any = None, **settings: Any) -> tuple[Proxy, str]:
        proxy = Proxy(
            ProxySettings(upstream=upstream, **settings),
            recall=recall,
            capture=journal_capture(self.store, None, CapturePolicy()),
        )
        server = ServerThread(proxy.app()).start()
        self.servers.append(server)
        return proxy, server.url

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def journal_rows(db: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    rows = [dict(r) for r in conn.execute("SELECT * FROM exchanges ORDER BY id")]
    conn.close()
    return rows


def engram_proxy(
    port: int, upstream: str, db: Path, *flags: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """The real `engram proxy` in a subprocess, on 127.0.0.1:`port`; stdout is discarded,
    stderr piped (the caller reads or closes it)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engram",
            "proxy",
            "--listen",
            f"127.0.0.1:{port}",
            "--upstream",
            upstream,
            *flags,
        ],
        env={**os.environ, "ENGRAM_DB": str(db), **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
