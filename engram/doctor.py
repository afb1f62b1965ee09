"""`engram doctor`: is every part of this set-up working, and if not, how to fix it.

Each check returns one `Check`: ok, warn (works, but worth fixing), fail (a required
part is broken) or skip (not configured / not applicable), with what was found and the
fix. Nothing here spends tokens or changes anything: the analyzer check lists models,
the mitmweb check reads options, the database check runs `PRAGMA integrity_check`.
"""

from __future__ import annotations

import os
import platform
import stat
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engram.config import Config
from engram.wire.markers import INTERNAL_HEADERS


@dataclass(frozen=True)
class Check:
    area: str
    name: str
    status: str  # ok | warn | fail | skip
    detail: str
    fix: str = ""
    required: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _session() -> Any:
    import requests

    s = requests.Session()
    s.trust_env = False  # never through a proxy: that may be the very thing being checked
    s.headers.update(INTERNAL_HEADERS)
    return s


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


def check_mitmweb(cfg: Config) -> list[Check]:
    url = cfg.mitmproxy.url.rstrip("/")
    s = _session()
    if cfg.mitmproxy.token:
        s.headers["Authorization"] = f"Bearer {cfg.mitmproxy.token}"
    try:
        response = s.get(url + "/options", timeout=3)
    except Exception:
        return [
            Check(
                "mitmweb",
                "reachable",
                "warn",
                f"nothing answers at {url}",
                'start it: mitmweb -s "$(engram addon-path)" --set web_password=... '
                "(or use `engram run` / `engram proxy` instead)",
                required=False,
            )
        ]
    if response.status_code in (401, 403):
        return [
            Check(
                "mitmweb",
                "token",
                "fail",
                f"{url} refused the token",
                "set ENGRAM_MITMWEB_TOKEN (or mitmproxy.token) to mitmweb's web_password",
            )
        ]
    try:
        options = response.json()
    except ValueError:
        return [
            Check(
                "mitmweb",
                "reachable",
                "fail",
                f"{url} is not mitmweb's web API",
                "mitmproxy.url must be mitmweb's web port (8081), not the proxy port",
            )
        ]
    out = [Check("mitmweb", "reachable and token", "ok", url)]
    stored = (options.get("store_streamed_bodies") or {}).get("value")
    out.append(
        Check(
            "mitmweb",
            "store_streamed_bodies",
            "ok" if stored else "warn",
            f"store_streamed_bodies = {stored}",
            "" if stored else 'load the addon: mitmweb -s "$(engram addon-path)"',
        )
    )
    addon = "engram_inject" in options
    out.append(
        Check(
            "mitmweb",
            "engram addon",
            "ok" if addon else "warn",
            "loaded" if addon else "not loaded (streams are buffered, no injection)",
            "" if addon else 'restart mitmweb with -s "$(engram addon-path)"',
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


def check_analyzer(cfg: Config) -> list[Check]:
    a = cfg.analyzer
    backend = a.backend
    if backend == "auto":
        backend = "anthropic" if a.api_key else "heuristic"
    if backend in ("heuristic", "none"):
        return [Check("analyzer", "backend", "ok", f"{backend} (offline, no key needed)")]
    s = _session()
    if backend == "anthropic":
        if not a.api_key:
            return [
                Check(
                    "analyzer",
                    "backend",
                    "fail",
                    "anthropic selected but no key",
                    "set ANTHROPIC_API_KEY or analyzer.api_key",
                )
            ]
        url = (a.base_url or "https://api.anthropic.com").rstrip("/") + "/v1/models"
        headers = {"x-api-key": a.api_key, "anthropic-version": "2023-06-01"}
    else:
        url = (a.openai_base_url or "https://api.openai.com/v1").rstrip("/") + "/models"
        headers = {"Authorization": f"Bearer {a.openai_api_key or 'none'}"}
    try:
        response = s.get(url, headers=headers, timeout=5)
    except Exception as exc:
        return [
            Check(
                "analyzer",
                backend,
                "fail",
                f"{url} unreachable: {type(exc).__name__}",
                "check the base URL and the network; capture continues meanwhile",
            )
        ]
    if response.status_code in (401, 403):
        return [
            Check(
                "analyzer", backend, "fail", f"{url} rejected the key", "fix the analyzer's API key"
            )
        ]
    ok = response.status_code < 400
    return [
        Check(
            "analyzer",
            backend,
            "ok" if ok else "warn",
            f"{url} answered {response.status_code} (no tokens spent)",
        )
    ]


def check_muninn(cfg: Config) -> list[Check]:
    m = cfg.muninn
    if not getattr(m, "enabled", False):
        return [
            Check("muninn", "mirror", "skip", "disabled (muninn.enabled = false)", required=False)
        ]
    from engram.mirror.client import MuninnAuthError
    from engram.mirror.vault import make_client, project_vault

    base = m.url.rstrip("/")
    try:
        health = _session().get(base + "/health", timeout=3)
        ok = health.status_code == 200
    except Exception:
        ok = False
    out = [
        Check(
            "muninn",
            "health",
            "ok" if ok else "fail",
            f"{base}/health {'answers' if ok else 'does not answer'}",
            ""
            if ok
            else "start MuninnDB (`muninn start`) or fix muninn.url; "
            "changes wait in the outbox meanwhile",
        )
    ]
    if not ok:
        return out
    try:
        make_client(m).ping(timeout=3)
        out.append(Check("muninn", "token", "ok", "MCP calls are authorized"))
    except MuninnAuthError:
        out.append(
            Check(
                "muninn",
                "token",
                "fail",
                "MuninnDB refused the token",
                "set MUNINN_TOKEN or put it in muninn.token_file (0600)",
            )
        )
    except Exception as exc:
        out.append(Check("muninn", "token", "fail", str(exc), "see `engram mirror status`"))
    from engram.paths import project_root

    vault = m.vault or project_vault(str(project_root()))
    out.append(
        Check(
            "muninn",
            "vaults",
            "ok",
            f"this project -> {vault}; global -> {m.global_vault}",
            required=False,
        )
    )
    return out


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


# -- agents (owned with engram/sources/agents.py; kept apart from the checks above) ------


def check_agents() -> list[Check]:
    """Which supported agents are on PATH, their release, whether `engram run` routes
    that release, what a headless Gemini run still needs, and the Claude Code hook."""
    import shutil

    from engram.sources import agent_checks
    from engram.sources.agents import AGENTS, installed_version, version_key

    out: list[Check] = []
    project = str(Path.cwd())
    for agent in AGENTS.values():
        path = shutil.which(agent.binary)
        if path is None:
            where = f" ({agent.package})" if agent.package else ""
            out.append(Check("agents", agent.name, "skip", f"not on PATH{where}", required=False))
            continue
        version = installed_version(path)
        route = f"routed by {agent.routing}"
        if version is None:
            status, detail = "warn", f"{path}: `--version` said no version; {route}"
        elif not agent.tested:
            status, detail = "warn", f"{version} at {path}; {route} (never verified here)"
        elif version_key(version) == version_key(agent.tested):
            status, detail = "ok", f"{version} at {path}; {route} (verified)"
        elif version_key(version) > version_key(agent.tested):
            status = "ok"
            detail = f"{version} at {path}; {route} (verified with {agent.tested}, newer)"
        else:
            status = "ok"
            detail = f"{version} at {path}; {route} (verified with {agent.tested})"
        out.append(Check("agents", agent.name, status, detail, required=False))
        if agent.name in ("gemini", "codex"):
            problems = agent_checks.problems(agent.name, project, os.environ)
            out.append(
                Check(
                    "agents",
                    f"{agent.name} through engram",
                    "warn" if problems else "ok",
                    "; ".join(problems) if problems else "ready for a headless run",
                    required=False,
                )
            )
    hooks = agent_checks.claude_hook_files(project)
    out.append(
        Check(
            "agents",
            "Claude Code hook",
            "ok" if hooks else "skip",
            f"SessionStart runs `engram prime` ({', '.join(map(str, hooks))})"
            if hooks
            else "not installed",
            "" if hooks else "`engram hooks install claude` primes each session with memory",
            required=False,
        )
    )
    return out


def check_ui() -> list[Check]:
    """`engram ui` has nothing to check unless it runs: then, that it answers."""
    from engram.ui.instances import running

    servers = running()
    if not servers:
        return [
            Check(
                "ui",
                "web UI",
                "skip",
                "not running",
                "`engram ui` starts it (a local page: memories, requests, recall, cost)",
                required=False,
            )
        ]
    out = []
    for server in servers:
        try:
            answer = _session().get(server.base_url + "/healthz", timeout=3)
            ok = answer.status_code == 200 and answer.json().get("app") == "engram-ui"
        except Exception:
            ok = False
        out.append(
            Check(
                "ui",
                "web UI",
                "ok" if ok else "warn",
                f"{server.base_url} (pid {server.pid}, database {server.db})"
                + ("" if ok else " does not answer"),
                "" if ok else f"stop it (kill {server.pid}) and start `engram ui` again",
                required=False,
            )
        )
    return out


def run_all(cfg: Config, db_path: Path) -> list[Check]:
    checks: list[Check] = []
    steps: list[Callable[[], list[Check]]] = [
        check_python,
        lambda: check_database(db_path, cfg.store.busy_timeout_ms),
        lambda: check_mitmweb(cfg),
        check_ca,
        lambda: check_analyzer(cfg),
        lambda: check_muninn(cfg),
        check_service,
        check_ui,
        check_agents,
    ]
    for step in steps:
        try:
            checks.extend(step())
        except Exception as exc:  # a broken check is a finding, not a crash
            checks.append(
                Check(
                    "doctor",
                    getattr(step, "__name__", "check"),
                    "fail",
                    f"the check itself failed: {exc!r}",
                )
            )
    return checks


def healthy(checks: list[Check]) -> bool:
    return not any(c.status == "fail" and c.required for c in checks)
