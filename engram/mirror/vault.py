"""Where a memory goes in MuninnDB, and with which credentials.

Kept apart from the client so the rules are testable without a server:
- vault names follow MuninnDB's rule `[a-z0-9_-]{1,64}`; a project directory's name is
  sanitized to fit (`My App.v2` -> `my-app-v2`) rather than rejected, because the user
  never chose it as a vault name;
- the token comes from settings (env MUNINN_TOKEN / MUNINN_MCP_TOKEN, the config file)
  or else MuninnDB's own token file, which we warn about when others can read it;
- a token is never sent in clear text to another machine unless the user says so.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from engram.errors import ConfigError
from engram.net import is_loopback

if TYPE_CHECKING:
    from engram.config import MuninnConfig
    from engram.mirror.client import MuninnClient

log = logging.getLogger("engram.mirror")

VAULT_RULE = re.compile(r"[a-z0-9_-]{1,64}")
_INVALID = re.compile(r"[^a-z0-9_-]+")
_warned: set[str] = set()  # one-time warnings already given in this process

Warn = Callable[[str], None]


def sanitize_vault(name: str) -> str:
    """Fold any text into a valid vault name; an empty result gets a stable hashed name."""
    text = _INVALID.sub("-", name.strip().lower()).strip("-_")
    text = re.sub(r"-{2,}", "-", text)[:64].strip("-_")
    if text:
        return text
    return "p-" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def project_vault(scope: str) -> str:
    """The default vault of a project scope: its directory's name, sanitized."""
    return sanitize_vault(Path(scope).name or "root")


def vault_for_scope(scope: str, vault: str | None, global_vault: str) -> str:
    """Global memories go to the global vault; project memories to `vault` if configured,
    else to a vault named after the project directory."""
    if scope == "global":
        return sanitize_vault(global_vault)
    return sanitize_vault(vault) if vault else project_vault(scope)


def once(key: str, message: str, warn: Warn | None) -> None:
    """Give a warning at most once per process (a daemon would repeat it every sync)."""
    if key in _warned:
        return
    _warned.add(key)
    (warn or log.warning)(message)


def read_token(token: str | None, token_file: str, warn: Warn | None = None) -> str | None:
    """The token from settings, else from the token file (None: MuninnDB runs open)."""
    if token:
        return token.strip()
    path = Path(token_file).expanduser()
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        once(
            f"token-read:{path}",
            f"cannot read the MuninnDB token file {path}: {exc.strerror}",
            warn,
        )
        return None
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        once(
            f"token-mode:{path}",
            f"the MuninnDB token file {path} is readable by other "
            f"users (mode {stat.S_IMODE(mode):o}); run `chmod 600 {path}`",
            warn,
        )
    return text or None


def check_url(url: str, has_token: bool, allow_plain_http: bool, warn: Warn | None = None) -> None:
    """Refuse to send a token over plain HTTP to another machine.

    The token grants read and write access to the team's memory; on an http:// URL to a
    non-loopback host anyone on the path can read it. The user can opt in
    (`muninn.allow_plain_http`, e.g. inside a trusted VPN) and is then warned once.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"muninn.url must be an http(s) URL, got {url!r}")
    if not has_token or parts.scheme == "https" or is_loopback(parts.hostname):
        return
    if not allow_plain_http:
        raise ConfigError(
            f"refusing to send the MuninnDB token over plain HTTP to {parts.hostname}",
            hint="use https://, or set muninn.allow_plain_http = true if the network is trusted",
        )
    once(
        f"plain-http:{parts.hostname}",
        f"WARNING: the MuninnDB token is sent in clear "
        f"text to {parts.hostname} (muninn.allow_plain_http is on)",
        warn,
    )


def token_mode_ok(path: Path) -> bool:
    """True when only the owner can read the file (used by `engram mirror status`)."""
    try:
        return not os.stat(path).st_mode & (stat.S_IRGRP | stat.S_IROTH)
    except OSError:
        return True


def make_client(m: MuninnConfig, warn: Warn | None = None) -> MuninnClient:
    """A client from the `[muninn]` settings, after the token and URL checks."""
    from engram.mirror.client import MuninnClient

    token = read_token(m.token, m.token_file, warn)
    check_url(m.url, token is not None, m.allow_plain_http, warn)
    return MuninnClient(m.url, token, timeout=m.timeout, connect_timeout=m.connect_timeout)
