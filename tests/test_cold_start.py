"""The hot commands stay off the heavy imports: `engram --help`, `list` and `status`
must start in <= 300 ms (bench/store.py measures it), and the ORM alone costs ~230 ms
to import (SQLAlchemy), the embedder and the SDKs more. A module-level import anywhere
on their path undoes that silently (it happened once: `status` took 1.3 s), so this
checks what each command imported, not how long it took."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = (
    "sqlalchemy.orm", "alembic", "anthropic", "openai", "onnxruntime", "pydantic", "aiohttp",
    "rich",
)  # fmt: skip

PROBE = """
import json, sys
from engram.cli.app import main
sys.argv = ["engram", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
sys.stderr.write("\\nMODULES " + json.dumps(sorted({m for m in sys.modules})) + "\\n")
"""


@pytest.mark.parametrize("args", [["--help"], ["list", "--limit", "5"], ["status"]])
def test_hot_commands_import_nothing_heavy(
    template_db: Path, tmp_path: Path, args: list[str]
) -> None:
    db = tmp_path / "engram.db"
    db.write_bytes(template_db.read_bytes())
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        env={**os.environ, "ENGRAM_DB": str(db)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = [x for x in done.stderr.splitlines() if x.startswith("MODULES ")]
    assert line, done.stderr
    loaded = set(json.loads(line[-1].removeprefix("MODULES ")))
    assert not [m for m in HEAVY if m in loaded], args
