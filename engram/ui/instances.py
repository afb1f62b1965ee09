"""Which `engram ui` servers are running: one small file per server, for `engram doctor`.

`<data dir>/ui/<pid>.json` holds the pid, port and database (never the token: the URL
with it is printed to the terminal that started the server, and only there). The file
is removed when the server stops; one left by a killed server names a dead pid and is
ignored. Imports nothing heavy: doctor reads it without loading aiohttp or Jinja2.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from engram.paths import data_dir, make_private_dir


@dataclass(frozen=True, slots=True)
class Instance:
    pid: int
    port: int
    db: str
    started_at: str

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _dir() -> Path:
    return data_dir() / "ui"


def register(instance: Instance) -> Path:
    make_private_dir(_dir())
    path = _dir() / f"{instance.pid}.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(asdict(instance), fh)
    return path


def unregister(pid: int) -> None:
    with contextlib.suppress(OSError):
        (_dir() / f"{pid}.json").unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running() -> list[Instance]:
    """The servers whose process is alive (stale files are skipped, not deleted)."""
    out: list[Instance] = []
    folder = _dir()
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.json")):
        try:
            instance = Instance(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue
        if _alive(instance.pid):
            out.append(instance)
    return out
