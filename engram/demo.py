"""`make demo`: engram end to end on loopback, with nothing to configure.

For now it shows the store and the memory commands on a throw-away database under
.demo/; the watcher issue turns it into the full capture -> analyze -> recall pipeline.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

STEPS: list[list[str]] = [
    ["add", "We use pnpm, never npm, in this repo", "--kind", "preference", "--scope", "{project}"],
    ["add", "The staging database is Postgres 16 on port 5433", "--scope", "{project}"],
    ["add", "Run the test suite with `make test`; it bootstraps .venv itself",
     "--kind", "procedure", "--scope", "{project}"],
    ["add", "I prefer small commits with imperative subject lines", "--kind", "preference"],
    ["add", "we use pnpm, never npm, in this repo.", "--kind", "preference",
     "--scope", "{project}"],
    ["list"],
    ["search", "postgres port"],
    ["stats"],
]


def main() -> int:
    root = Path.cwd() / ".demo"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    project = root / "project"
    project.mkdir()
    env = {**os.environ, "ENGRAM_DB": str(root / "engram.db"), "ENGRAM_CONFIG": ""}
    engram = [sys.executable, "-m", "engram"]
    print(f"engram demo: database {root / 'engram.db'}\n", flush=True)
    for step in STEPS:
        args = [a.replace("{project}", str(project)) for a in step]
        print(f"$ engram {shlex.join(args)}", flush=True)
        result = subprocess.run([*engram, *args], env=env, check=False)
        if result.returncode != 0:
            print(f"demo step failed with exit code {result.returncode}", file=sys.stderr)
            return result.returncode
        print(flush=True)
    print("The fifth `add` was the same fact as the first: engram kept one copy.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
