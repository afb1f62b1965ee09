"""Agents' JSON settings files (Claude Code's settings.json, ~/.claude.json, .mcp.json),
read and rewritten without losing what else they hold or their permissions."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from engram.errors import EngramError


def read_object(path: Path) -> dict[str, Any]:
    """A JSON settings file as a dict ({} when missing); refuses to guess at a broken one."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EngramError(f"{path} is not valid JSON ({exc}); not changing it") from None
    except OSError as exc:
        raise EngramError(f"cannot read {path}: {exc.strerror}") from None
    if not isinstance(data, dict):
        raise EngramError(f"{path} does not hold a JSON object; not changing it")
    return data


def write(path: Path, data: dict[str, Any], mode: int = 0o644) -> None:
    """Replace a JSON file atomically, keeping its permissions (`mode` for a new one:
    ~/.claude.json holds credentials-adjacent state and is 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    keep = path.stat().st_mode & 0o777 if path.exists() else mode
    tmp = path.with_name(path.name + ".engram-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, keep)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    os.chmod(tmp, keep)
    os.replace(tmp, path)
