"""The service's env file: the 0600 KEY=VALUE file both units read (systemd's
EnvironmentFile=, launchd through `sh`), holding the keys and the mitmweb token that must
never appear on a command line. Written and read here only; shown masked."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from engram.errors import ConfigError

HEADER = "Written by `engram service install`; `engram service uninstall` removes it."

_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def is_secret_var(key: str) -> bool:
    """Mask every variable but the non-secret engram settings: unknown ones may be keys."""
    from engram.config import all_settings

    public = {"ENGRAM_DB", "ENGRAM_CONFIG"}
    public.update(var for s in all_settings() if not s.secret for var in s.env)
    return key not in public


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (bare or quoted values), as this module writes them."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    values = {}
    for raw in text.splitlines():
        key, sep, value = raw.strip().removeprefix("export ").partition("=")
        if not sep or not _VAR.fullmatch(key):
            continue  # comments, blank lines
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def _mask(value: str) -> str:
    return "****" + value[-4:] if len(value) >= 12 else "****"


def render_env_file(values: Mapping[str, str], *, masked: bool = False) -> str:
    """Single-quoted values read the same in systemd's EnvironmentFile= and in sh."""
    lines = [
        f"# {HEADER}",
        "# Read by the engram service units; keep it 0600. Reinstalling "
        "keeps every variable in it.",
    ]
    for key, value in values.items():
        if not _VAR.fullmatch(key) or any(c in value for c in "'\\\n"):
            raise ConfigError(
                f"cannot write {key} to the service env file: values must be "
                "free of quotes, backslashes and newlines"
            )
        lines.append(f"{key}='{_mask(value) if masked and is_secret_var(key) else value}'")
    return "\n".join(lines) + "\n"
