"""Carrying out an `engram.service` plan: writing and removing files, and running the
service manager only where it answers.

Kept apart from the planning so that everything `--dry-run` shows comes from code that
cannot change the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from engram import service
from engram.service import FileSpec, Plan, read_manifest


def _mkdirs(path: Path, created: list[Path]) -> None:
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for d in reversed(missing):
        d.mkdir(mode=0o700)
        os.chmod(d, 0o700)  # mkdir's mode is filtered by the umask
        created.append(d)


def write_file(spec: FileSpec) -> None:
    """Atomic, and never briefly readable by others: the temp file is created with its mode."""
    tmp = spec.path.with_name(f".{spec.path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, spec.mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(spec.content)
    os.chmod(tmp, spec.mode)
    os.replace(tmp, spec.path)


def apply_install(plan: Plan) -> None:
    layout = plan.layout
    previous = read_manifest(layout) or {}
    created = [Path(d) for d in previous.get("dirs", [])]
    for path in plan.remove:
        path.unlink(missing_ok=True)
    dirs = [layout.engram_dir, layout.unit_dir]
    if layout.platform == "macos":
        dirs.append(layout.log_dir)
    for d in dirs:
        _mkdirs(d, created)
    for spec in plan.files:
        write_file(spec)
    manifest = {
        "version": 1,
        "platform": layout.platform,
        "jobs": [j.name for j in plan.jobs],
        "files": [str(f.path) for f in plan.files],
        "dirs": sorted({str(d) for d in created}),
    }
    write_file(
        FileSpec(layout.manifest, (json.dumps(manifest, indent=2) + "\n").encode(), 0o600, "")
    )


def apply_uninstall(plan: Plan) -> list[Path]:
    """Delete the manifest's files, then its directories if that left them empty."""
    removed = []
    for path in plan.remove:
        if path.exists() or path.is_symlink():
            path.unlink()
            removed.append(path)
    dirs = (read_manifest(plan.layout) or {}).get("dirs", [])
    plan.layout.manifest.unlink(missing_ok=True)
    for d in sorted((Path(p) for p in dirs), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):  # not empty (user's files, launchd's logs)
            d.rmdir()
    return removed


class Runner:
    """Runs service-manager commands only where that manager answers: a container has
    `systemctl` but no user bus, a Linux box rendering a plist has no launchctl."""

    def __init__(self, platform: str, *, host: str | None = None) -> None:
        self.platform = platform
        self.host = service.detect_platform() if host is None else host

    def unavailable(self, tool: str) -> str | None:
        """Why `tool` cannot be used here, or None when it can."""
        if self.host != self.platform:
            return f"this machine is not {self.platform}"
        if shutil.which(tool) is None:
            return f"{tool} is not installed here"
        probe = {
            "systemctl": ["systemctl", "--user", "show-environment"],
            "launchctl": ["launchctl", "print", f"gui/{os.getuid()}"],
        }.get(tool)
        if probe is None:
            return None
        try:
            done = subprocess.run(probe, capture_output=True, text=True, timeout=15)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"`{shlex.join(probe)}` failed: {exc}"
        if done.returncode != 0:
            reason = (done.stderr or done.stdout).strip().splitlines()
            return f"`{shlex.join(probe)}` failed: {reason[0] if reason else done.returncode}"
        return None

    def run(self, argv: list[str]) -> tuple[int, str]:
        """(exit status, its stderr or stdout): for install and uninstall steps."""
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return 1, str(exc)
        return done.returncode, (done.stderr or done.stdout).strip()

    def passthrough(self, argv: list[str]) -> int:
        """For status and logs: the tool's own output, straight to the terminal."""
        sys.stdout.flush()
        return subprocess.run(argv, check=False).returncode
