"""Where engram keeps its files by default (XDG on Linux, the platform's places elsewhere)."""

from __future__ import annotations

import os
from pathlib import Path

APP = "engram"


def data_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP, appauthor=False))


def config_dir() -> Path:
    from platformdirs import user_config_dir

    return Path(user_config_dir(APP, appauthor=False))


def default_db_path() -> Path:
    return data_dir() / "engram.db"


def default_config_path() -> Path:
    return config_dir() / "config.toml"


def make_private_dir(path: Path) -> None:
    """Create `path` (and parents) with 0700 for the directories engram creates itself."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        d.mkdir(mode=0o700, exist_ok=True)
        os.chmod(d, 0o700)  # mkdir's mode is filtered by the umask


def project_root(start: Path | None = None) -> Path:
    """The project a path belongs to: the enclosing git work tree, else the directory."""
    here = (start or Path.cwd()).resolve()
    for p in (here, *here.parents):
        if (p / ".git").exists():
            return p
    return here


# The working directory of engram's own `claude -p` analyzer runs (the claude-code backend).
# Claude Code files their transcripts under a project named after this directory, so every
# source (transcripts, proxy, watcher) can recognise and skip engram's own sessions.
ANALYZER_WORKDIR_NAME = "claude-code-analyzer"


def analyzer_workdir() -> Path:
    return data_dir() / ANALYZER_WORKDIR_NAME


def is_engram_internal_project(project: str | Path | None) -> bool:
    """Whether a project directory is one engram itself works in (its analyzer's)."""
    if not project:
        return False
    return Path(project).name == ANALYZER_WORKDIR_NAME
