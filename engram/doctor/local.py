"""Checks of this machine's set-up: Python and packages, the database, the mitmproxy CA,
the installed service units."""

from __future__ import annotations

import os
import platform
import stat
import sys
from pathlib import Path

from engram.doctor.check import Check


def check_python() -> list[Check]:
    from importlib.metadata import PackageNotFoundError, version

    import engram

    versions = []
    for pkg in ("mitmproxy", "anthropic", "openai", "SQLAlchemy", "wordllama"):
        try:
            versions.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            versions.append(f"{pkg} missing")
    ok = sys.version_info >= (3, 12)
    return [
        Check(
            "engram",
            "python and packages",
            "ok" if ok else "fail",
            f"engram {engram.__version__}, Python {platform.python_version()}; "
            + ", ".join(versions),
            "" if ok else "engram needs Python 3.12 or newer",
        )
    ]


def check_database(path: Path, busy_ms: int) -> list[Check]:
    from engram.store import schema
    from engram.store.db import Store

    out: list[Check] = []
    if not path.exists():
        return [
            Check(
                "database",
                "file",
                "warn",
                f"{path} does not exist yet",
                "it is created on first use (e.g. `engram db upgrade`)",
            )
        ]
    mode = stat.S_IMODE(path.stat().st_mode)
    out.append(
        Check(
            "database",
            "permissions",
            "ok" if mode & 0o077 == 0 else "warn",
            f"{path} mode {mode:o}",
            "" if mode & 0o077 == 0 else f"chmod 600 {path}",
        )
    )
    store = Store(path, busy_ms)
    try:
        revision = store.current_revision()
    except Exception as exc:
        return [
            *out,
            Check(
                "database",
                "schema",
                "fail",
                str(exc),
                "point --db / ENGRAM_DB at an engram database",
            ),
        ]
    if revision == schema.HEAD:
        out.append(Check("database", "schema", "ok", f"revision {revision} (head)"))
    else:
        out.append(
            Check(
                "database",
                "schema",
                "warn",
                f"revision {revision or '(empty)'}, head {schema.HEAD}",
                "run `engram db upgrade` (also done automatically on first use)",
            )
        )
        return out
    with store.read() as conn:
        result = conn.execute("PRAGMA integrity_check").fetchone()[0]
        out.append(
            Check(
                "database",
                "integrity",
                "ok" if result == "ok" else "fail",
                result,
                "" if result == "ok" else "restore from `engram export` output or a backup",
            )
        )
        failed = conn.execute("SELECT count(*) FROM exchanges WHERE status = 'failed'").fetchone()[
            0
        ]
        pending = conn.execute(
            "SELECT count(*) FROM exchanges WHERE status = 'pending'"
        ).fetchone()[0]
    out.append(
        Check(
            "journal",
            "backlog",
            "ok" if pending < 500 else "warn",
            f"{pending} exchanges pending analysis",
            ""
            if pending < 500
            else "is the watcher running with an analyzer? `engram analyze` runs it by hand",
            required=False,
        )
    )
    out.append(
        Check(
            "journal",
            "failed",
            "ok" if not failed else "warn",
            f"{failed} exchanges failed (capture or analysis)",
            ""
            if not failed
            else "`engram journal --failed` shows why; "
            "`engram analyze --retry` re-queues analysis failures",
            required=False,
        )
    )
    return out


def check_ca() -> list[Check]:
    ca = Path.home() / ".mitmproxy" / "mitmproxy-ca-cert.pem"
    if not ca.exists():
        return [
            Check(
                "mitmweb",
                "CA certificate",
                "skip",
                f"{ca} not found",
                "start mitmproxy once to create it (needed for HTTPS interception)",
                required=False,
            )
        ]
    trust = (
        f"sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain {ca}"
        if sys.platform == "darwin"
        else f"sudo cp {ca} /usr/local/share/ca-certificates/mitmproxy.crt && "
        "sudo update-ca-certificates; or per agent: NODE_EXTRA_CA_CERTS=" + str(ca)
    )
    return [Check("mitmweb", "CA certificate", "ok", f"{ca} (trust it: {trust})", required=False)]


def check_service() -> list[Check]:
    import shutil
    import subprocess

    manifest = (
        Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
        / "engram"
        / "service-manifest.json"
    )
    if not manifest.exists():
        return [
            Check(
                "service",
                "installed",
                "skip",
                "no engram service installed",
                "`engram service install` runs the watcher as a user service",
                required=False,
            )
        ]
    out = [Check("service", "installed", "ok", f"manifest {manifest}", required=False)]
    if sys.platform != "darwin" and shutil.which("systemctl"):
        try:
            state = subprocess.run(
                ["systemctl", "--user", "is-active", "engram"],
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            state = ""
        if state:
            out.append(
                Check(
                    "service",
                    "running",
                    "ok" if state == "active" else "warn",
                    f"engram.service is {state}",
                    ""
                    if state == "active"
                    else "`engram service status`; `engram service logs` shows why",
                    required=False,
                )
            )
    return out
