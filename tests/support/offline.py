"""Running Python code with no network: for "nothing downloads at run time" tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


def no_network_prefix() -> list[str]:
    """`unshare -n` (a network namespace with no interfaces: native code cannot reach
    anything either, which an audit hook would not see) where this machine allows it."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return []
    for flags in (["-n"], ["-rn"]):
        ok = subprocess.run([unshare, *flags, "true"], capture_output=True, check=False)
        if ok.returncode == 0:
            return [unshare, *flags]
    return []


def run_offline(code: str, home: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh interpreter with an empty HOME, hub downloads off, and no network
    where the machine allows a network namespace."""
    env = {"HF_HUB_OFFLINE": "1", "HOME": str(home), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [*no_network_prefix(), sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
