"""Per-user service units for engram's daemons: systemd user units on Linux, launchd agents
on macOS. This module plans and renders (it only reads files); `engram.service_ops` writes
files and runs the service manager; `engram/cli/service_cmd.py` is the thin CLI.

Why it is built this way:
- Everything install does is first a `Plan` (files with their content, commands), so
  `--dry-run` prints exactly what a real install would do, and tests check rendering
  without touching a service manager.
- Secrets never go into a unit or plist: they live in one 0600 env file that systemd reads
  with `EnvironmentFile=` and launchd jobs source through `/bin/sh` before `exec`.
- A manifest lists exactly the files (and directories) install created, so uninstall
  removes those and nothing else, even when the user keeps other files next to them.
- Service-manager commands run only where the manager is really reachable (a container
  has `systemctl` but no user bus); elsewhere the user is told the exact commands.
"""

from __future__ import annotations

import json
import os
import plistlib
import re
import secrets
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import engram
from engram.errors import ConfigError, EngramError
from engram.service_env import HEADER, read_env_file, render_env_file

PLATFORMS = ("linux", "macos")
WATCHER, MITMWEB, PROXY = "engram", "engram-mitmweb", "engram-proxy"
LABEL_PREFIX = "io.github.engram."  # launchd label = prefix + job name
TOKEN_VAR = "ENGRAM_MITMWEB_TOKEN"
RESTART_SEC = 5  # systemd: pause between restarts
START_LIMIT = (300, 5)  # systemd: give up after 5 starts within 300 s
THROTTLE_INTERVAL = 30  # launchd: at most one (re)start per 30 s, so a bad config idles
STOP_TIMEOUT = 30  # both: SIGKILL only if a clean SIGTERM shutdown takes longer
MITMWEB_FLAGS = (
    "--listen-host",
    "127.0.0.1",
    "--listen-port",
    "8080",
    "--web-host",
    "127.0.0.1",
    "--web-port",
    "8081",
    "--no-web-open-browser",
)
# launchd cannot read an env file: sh exports it, then becomes the daemon ($0 = env file).
SH_SOURCE = 'set -a && . "$0" && set +a && exec "$@"'


@dataclass(frozen=True)
class Job:
    """One daemon: its name (systemd unit stem, launchd label suffix) and command line."""

    name: str
    description: str
    argv: tuple[str, ...]
    after: tuple[str, ...] = ()  # jobs to start first (systemd; launchd has no ordering)


@dataclass(frozen=True)
class Layout:
    """Where one platform's files go under a home directory."""

    platform: str
    home: Path
    config_home: Path

    @property
    def unit_dir(self) -> Path:
        if self.platform == "linux":
            return self.config_home / "systemd" / "user"
        return self.home / "Library" / "LaunchAgents"

    @property
    def engram_dir(self) -> Path:
        return self.config_home / "engram"

    @property
    def env_file(self) -> Path:
        return self.engram_dir / "service.env"

    @property
    def manifest(self) -> Path:
        return self.engram_dir / "service-manifest.json"

    @property
    def log_dir(self) -> Path:
        return self.home / "Library" / "Logs" / "engram"

    def unit_file(self, name: str) -> Path:
        if self.platform == "linux":
            return self.unit_dir / f"{name}.service"
        return self.unit_dir / f"{LABEL_PREFIX}{name}.plist"

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def owned_dirs(self) -> tuple[Path, ...]:
        """The only directories whose files uninstall may delete."""
        dirs = (self.unit_dir, self.engram_dir)
        return dirs + ((self.log_dir,) if self.platform == "macos" else ())


def detect_platform() -> str | None:
    return {"linux": "linux", "darwin": "macos"}.get(sys.platform)


def resolve_platform(requested: str | None) -> str:
    if requested is not None:
        if requested not in PLATFORMS:
            raise ConfigError(f"unknown platform {requested!r} (one of: linux, macos)")
        return requested
    found = detect_platform()
    if found is None:
        raise EngramError(
            f"no service manager support on {sys.platform}",
            hint="pass --platform linux or macos to write the files anyway",
        )
    return found


def layout_for(platform: str, env: Mapping[str, str] | None = None) -> Layout:
    env = os.environ if env is None else env
    home = Path(env.get("HOME") or Path.home())
    xdg = env.get("XDG_CONFIG_HOME", "")
    return Layout(platform, home, Path(xdg) if os.path.isabs(xdg) else home / ".config")


def engram_argv() -> tuple[str, ...]:
    """This interpreter's `engram` console script, else `python -m engram`: the service
    runs the engram that installed it, whatever PATH a login session would have."""
    script = Path(sys.executable).parent / "engram"
    return (str(script),) if script.exists() else (sys.executable, "-m", "engram")


def mitmweb_path() -> str:
    """mitmweb from engram's own environment first: that one can load engram's addon."""
    local = Path(sys.executable).parent / "mitmweb"
    found = str(local) if local.exists() else shutil.which("mitmweb")
    if not found:
        raise ConfigError(
            "mitmweb not found next to this Python or on PATH",
            hint="install engram with its mitmproxy dependency",
        )
    return found


def addon_path() -> str:
    return str((Path(engram.__file__).parent / "sources" / "addon.py").resolve())


def make_jobs(
    *,
    mitmweb: bool,
    proxy: bool,
    watcher_args: tuple[str, ...] = (),
    proxy_listen: str = "127.0.0.1:8787",
    proxy_upstream: str = "https://api.anthropic.com",
    transcripts: tuple[str, ...] = (),
) -> list[Job]:
    """The jobs to install, in start order (mitmweb before the watcher that polls it).

    `transcripts` (agent names) makes the engram job follow those agents' transcripts:
    beside mitmweb in one process (`engram mitmproxy --transcripts`) when mitmweb is
    managed or watcher arguments are given, else on their own (`engram ingest --follow`):
    a user with no proxy and no mitmweb gets no watcher retrying a mitmweb that is not
    there.
    """
    jobs = []
    if mitmweb:
        argv = (
            mitmweb_path(),
            *MITMWEB_FLAGS,
            "-s",
            addon_path(),
            "--set",
            "store_streamed_bodies=true",
        )
        jobs.append(Job(MITMWEB, "mitmweb with engram's addon (for engram)", argv))
    agents = ",".join(transcripts)
    if transcripts and not mitmweb and not watcher_args:
        watcher = Job(
            WATCHER,
            "engram: learn memories from agent transcripts",
            (*engram_argv(), "ingest", "--follow", "--agent", agents),
        )
    else:
        extra = ("--transcripts", agents) if transcripts else ()
        watcher = Job(
            WATCHER,
            "engram: learn memories from LLM API traffic",
            (*engram_argv(), "mitmproxy", *extra, *watcher_args),
            after=(MITMWEB,) if mitmweb else (),
        )
    jobs.append(watcher)
    if proxy:
        jobs.append(
            Job(
                PROXY,
                "engram proxy: local reverse proxy for LLM APIs",
                (*engram_argv(), "proxy", "--listen", proxy_listen, "--upstream", proxy_upstream),
            )
        )
    return jobs


# --- rendering -----------------------------------------------------------------------------

_SYSTEMD_SAFE = re.compile(r"[A-Za-z0-9_@%+=:,./${}-]+")


def systemd_quote(arg: str, *, expand: bool = False) -> str:
    """Quote one ExecStart= word: systemd expands %-specifiers and $VARs and has its own
    C-style escapes, so shlex.quote's output would be misread. `expand` keeps `${VAR}`."""
    text = arg.replace("%", "%%")
    if not expand:
        text = text.replace("$", "$$")
    if text and _SYSTEMD_SAFE.fullmatch(text):
        return text
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\n\t\r":
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _home_spec(path: Path, home: Path) -> str:
    """A path for a unit file: `%h/...` under home (portable across renamed homes)."""
    try:
        return "%h/" + str(path.relative_to(home)).replace("%", "%%")
    except ValueError:
        return str(path).replace("%", "%%")


def password_hash(token: str) -> str:
    """mitmweb's `web_password` as an argon2 hash (a value starting with `$` is one).

    A process's command line is visible to every local user (`ps`), so the unit passes
    this hash instead of the token: mitmweb verifies the token against it, and the token
    itself stays in the 0600 env file the watcher reads. The token is 128 random bits, so a
    cheap hash costs an attacker nothing useful (mitmweb checks it on every request that
    comes without its cookie: ~10 ms at these parameters, ~110 ms at argon2's defaults).
    The salt is derived from the token, so a reinstall writes the same unit.
    """
    import hashlib

    from argon2.low_level import Type, hash_secret

    salt = hashlib.sha256(b"engram-mitmweb-salt:" + token.encode()).digest()[:16]
    return hash_secret(
        token.encode(),
        salt,
        time_cost=1,
        memory_cost=8192,
        parallelism=1,
        hash_len=32,
        type=Type.ID,
    ).decode()


def with_password(job: Job, token: str) -> Job:
    """The mitmweb job with its web password (as a hash) on the command line."""
    return Job(
        job.name,
        job.description,
        (*job.argv, "--set", f"web_password={password_hash(token)}"),
        job.after,
    )


def render_systemd(job: Job, layout: Layout) -> str:
    words = [systemd_quote(a) for a in job.argv]
    unit = ["[Unit]", f"Description={job.description}"]
    if job.after:
        deps = " ".join(f"{name}.service" for name in job.after)
        unit += [f"After={deps}", f"Wants={deps}"]
    unit += [
        f"StartLimitIntervalSec={START_LIMIT[0]}",
        f"StartLimitBurst={START_LIMIT[1]}",
        "",
        "[Service]",
        "Type=simple",
        "ExecStart=" + " ".join(words),
        f"EnvironmentFile={_home_spec(layout.env_file, layout.home)}",
        "Environment=PYTHONUNBUFFERED=1",
        "UMask=0077",
        "Restart=on-failure",
        f"RestartSec={RESTART_SEC}",
    ]
    if job.name != MITMWEB:  # engram exits 2 on a configuration error: retrying cannot help
        unit.append(f"RestartPreventExitStatus={ConfigError.exit_code}")
    unit += [
        f"TimeoutStopSec={STOP_TIMEOUT}",
        f"SyslogIdentifier={job.name}",
        "",
        "[Install]",
        "WantedBy=default.target",
    ]
    return f"# {HEADER}\n\n" + "\n".join(unit) + "\n"


def launchd_dict(job: Job, layout: Layout) -> dict[str, object]:
    script = SH_SOURCE
    log = str(layout.log_file(job.name))
    return {
        "Label": LABEL_PREFIX + job.name,
        "ProgramArguments": ["/bin/sh", "-c", script, str(layout.env_file), *job.argv],
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},  # restart after a failure, not a clean exit
        "ThrottleInterval": THROTTLE_INTERVAL,
        "ExitTimeOut": STOP_TIMEOUT,
        "StandardOutPath": log,
        "StandardErrorPath": log,
        "EnvironmentVariables": {"PYTHONUNBUFFERED": "1"},
        "Umask": 0o077,
    }


def render_launchd(job: Job, layout: Layout) -> bytes:
    return plistlib.dumps(launchd_dict(job, layout), sort_keys=False)


# --- planning ------------------------------------------------------------------------------


@dataclass
class FileSpec:
    path: Path
    content: bytes
    mode: int
    shown: str  # what --dry-run prints (secrets masked)


@dataclass
class Plan:
    layout: Layout
    jobs: list[Job]
    files: list[FileSpec]
    stop: list[list[str]]  # before files change (stale jobs, or everything on uninstall)
    start: list[list[str]]  # after files change
    remove: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def read_manifest(layout: Layout) -> dict[str, Any] | None:
    try:
        data = json.loads(layout.manifest.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise EngramError(f"cannot read {layout.manifest}: {exc}") from None
    return data if isinstance(data, dict) else None


def units(layout: Layout, names: list[str]) -> list[str]:
    return [f"{n}.service" if layout.platform == "linux" else LABEL_PREFIX + n for n in names]


def start_commands(layout: Layout, names: list[str]) -> list[list[str]]:
    if layout.platform == "linux":
        # restart, not `enable --now`: a reinstall must pick up changed unit files.
        return [
            ["systemctl", "--user", "daemon-reload"],
            ["systemctl", "--user", "enable", *units(layout, names)],
            ["systemctl", "--user", "restart", *units(layout, names)],
        ]
    domain = f"gui/{os.getuid()}"
    cmds = []
    for name in names:
        label = LABEL_PREFIX + name
        cmds += [
            ["launchctl", "bootout", f"{domain}/{label}"],  # may fail: not loaded yet
            ["launchctl", "enable", f"{domain}/{label}"],
            ["launchctl", "bootstrap", domain, str(layout.unit_file(name))],
        ]
    return cmds


def stop_commands(layout: Layout, names: list[str]) -> list[list[str]]:
    if not names:
        return []
    if layout.platform == "linux":
        return [["systemctl", "--user", "disable", "--now", *units(layout, names)]]
    return [
        ["launchctl", "bootout", f"gui/{os.getuid()}/{label}"] for label in units(layout, names)
    ]


def status_commands(layout: Layout, names: list[str]) -> list[list[str]]:
    if layout.platform == "linux":
        return [["systemctl", "--user", "status", "--no-pager", *units(layout, names)]]
    return [["launchctl", "print", f"gui/{os.getuid()}/{label}"] for label in units(layout, names)]


def log_command(layout: Layout, names: list[str], *, lines: int, follow: bool) -> list[str]:
    if layout.platform == "linux":
        unit_args = [arg for u in units(layout, names) for arg in ("-u", u)]
        return [
            "journalctl",
            "--user",
            *unit_args,
            "-n",
            str(lines),
            *(["-f"] if follow else ["--no-pager"]),
        ]
    return [
        "tail",
        "-n",
        str(lines),
        *(["-F"] if follow else []),
        *(str(layout.log_file(n)) for n in names),
    ]


def plan_install(
    layout: Layout, jobs: list[Job], env: Mapping[str, str], *, token: str | None = None
) -> Plan:
    """Files and commands for `jobs`. `env` holds what the service must see that it would
    not find itself (values from the installing shell); `token` a configured mitmweb token."""
    names = [j.name for j in jobs]
    previous = read_manifest(layout) or {}
    if previous.get("platform", layout.platform) != layout.platform:
        raise EngramError(
            f"the service is installed for {previous['platform']}",
            hint="run `engram service uninstall` first",
        )
    stale = [n for n in previous.get("jobs", []) if n not in names]
    values = read_env_file(layout.env_file)
    if MITMWEB in stale and TOKEN_VAR not in env:
        values.pop(TOKEN_VAR, None)  # it belonged to the managed mitmweb, now going away
    values.update(env)
    if MITMWEB in names:
        # configured > kept from the last install > new: reinstalling keeps the password.
        values[TOKEN_VAR] = token or values.get(TOKEN_VAR) or secrets.token_hex(16)
        jobs = [with_password(j, values[TOKEN_VAR]) if j.name == MITMWEB else j for j in jobs]
    files = []
    for job in jobs:
        if layout.platform == "linux":
            text = render_systemd(job, layout)
            files.append(FileSpec(layout.unit_file(job.name), text.encode(), 0o644, text))
        else:
            data = render_launchd(job, layout)
            files.append(FileSpec(layout.unit_file(job.name), data, 0o644, data.decode()))
    files.append(
        FileSpec(
            layout.env_file,
            render_env_file(values).encode(),
            0o600,
            render_env_file(values, masked=True),
        )
    )
    plan = Plan(
        layout,
        jobs,
        files,
        stop_commands(layout, stale),
        start_commands(layout, names),
        remove=[layout.unit_file(n) for n in stale],
    )
    if layout.platform == "macos" and MITMWEB in names:
        plan.notes.append("launchd has no start order: the watcher retries until mitmweb is up")
    return plan


def plan_uninstall(layout: Layout) -> Plan:
    manifest = read_manifest(layout)
    if manifest is None:
        raise EngramError(f"engram's service is not installed (no {layout.manifest})")
    names = [str(n) for n in manifest.get("jobs", [])]
    files = [Path(p) for p in manifest.get("files", [])]
    stray = [p for p in files if p.parent not in layout.owned_dirs()]
    if stray:
        raise EngramError(
            f"the manifest lists files outside engram's directories: {stray[0]}",
            hint=f"remove them yourself, then {layout.manifest}",
        )
    after = [["systemctl", "--user", "daemon-reload"]] if layout.platform == "linux" else []
    return Plan(layout, [], [], stop_commands(layout, names), after, remove=files)
