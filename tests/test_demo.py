"""`make demo` runs the real pipeline; keep it working."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parent.parent / "scripts" / "demo.py"


def test_demo_learns_from_the_scripted_session(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(DEMO)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert "Fetched 6 new flows -> 6 LLM requests" in done.stdout
    conn = sqlite3.connect(tmp_path / ".demo" / "engram.db")
    facts = {
        c: (k, s)
        for c, k, s in conn.execute(
            "SELECT content, kind, scope FROM memories WHERE status = 'active'"
        )
    }
    text = " ".join(facts).lower()
    assert "pnpm" in text and "5433" in text and "make test" in text
    assert any(k == "gotcha" and "pnpm install" in c for c, (k, _s) in facts.items())
    assert any(s == "global" and "small commits" in c for c, (_k, s) in facts.items())
    assert conn.execute("SELECT count(*) FROM exchanges").fetchone()[0] == 6
    # Nothing left running: the demo's mitmweb is gone.
    ps = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
    assert ps.stdout.strip() == ""
