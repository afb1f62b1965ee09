"""Which project an MCP session works in.

An MCP server is started by the client, often not in the project: Claude Code starts it
in the session's directory, but Claude Desktop in `/` and editors wherever they were
launched. So, in order:

1. the client's roots (`roots/list`), when it offers them: the first `file://` root;
2. the server's working directory, when it is inside a git work tree;
3. `engram mcp --project DIR`;
4. the working directory anyway, unless it is `/` or the home directory (a memory
   scoped there would reach every project);
5. none: the session sees and writes global memories only.

Each choice is normalised as `engram add --scope project` does (the enclosing git work
tree), so the CLI, `engram prime` and the MCP server agree on a project's scope.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote, urlparse

from engram.paths import project_root


def root_path(uri: str) -> Path | None:
    """The directory a `file://` root names; None for other schemes or relative paths."""
    parsed = urlparse(uri)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        return None
    path = unquote(parsed.path)
    return Path(path) if path.startswith("/") else None


def _in_git_tree(directory: Path) -> bool:
    return any((p / ".git").exists() for p in (directory, *directory.parents))


def _trivial(directory: Path) -> bool:
    return directory in (Path("/"), Path.home().resolve())


def resolve(roots: Iterable[str] | None, cwd: Path, flag: Path | None) -> str | None:
    """The session's project directory (absolute, as memory scopes spell it) or None."""
    for uri in roots or ():
        path = root_path(uri)
        if path is not None:
            return _scope(path)
    here = cwd.resolve()
    if _in_git_tree(here):
        return _scope(here)
    if flag is not None:
        return _scope(flag.expanduser())
    if not _trivial(here):
        return _scope(here)
    return None


def _scope(directory: Path) -> str:
    root = project_root(directory.resolve())
    return os.path.normpath(str(root))
