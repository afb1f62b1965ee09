"""Mirror benchmark: a 100,000-row outbox drained against a loopback MuninnDB stand-in.

Targets (issue: mirror): the backlog drains completely, with flat memory (RSS growth after
the first two of ten steps under 12 MB: the outbox is read 200 rows a page, so nothing may
grow with the backlog).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))  # tests.support: the stand-in
from _util import print_table, verdict

from tests.support.outbox_load import drain


def main() -> None:
    n = 100_000
    with tempfile.TemporaryDirectory() as tmp:
        done = drain(Path(tmp) / "big.db", n, steps=10)
    print_table(
        f"mirror: {n:,}-row outbox against a loopback stand-in",
        [
            ("drained", f"{done.counts.get('done', 0):,} done, {done.mirrored:,} mirrored",
             f"{n:,}", "ok" if done.mirrored == n and done.counts.get("done") == n else "MISS"),
            ("wall time", f"{done.seconds:.1f} s", "-", "-"),
            ("rows per second", f"{n / done.seconds:,.0f}", "-", "-"),
            ("RSS after step 2 / peak", f"{done.samples[1]:.1f} / {max(done.samples):.1f} MB",
             "-", "-"),
            ("RSS growth after step 2", f"{done.growth:.1f} MB", "< 12 MB",
             verdict(done.growth, 12)),
        ],
    )  # fmt: skip


if __name__ == "__main__":
    main()
