"""Helpers shared by the benchmarks: timing, percentiles and the result table."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    """Milliseconds per call."""
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def summary(samples: list[float]) -> tuple[float, float]:
    return statistics.median(samples), percentile(samples, 99)


def print_table(title: str, rows: list[tuple[str, str, str, str]]) -> None:
    """rows: (measure, value, target, verdict)."""
    from rich.console import Console
    from rich.table import Table

    table = Table("measure", "value", "target", "", title=title)
    for row in rows:
        table.add_row(*row)
    Console().print(table)


def verdict(value: float, target: float, higher_is_better: bool = False) -> str:
    ok = value >= target if higher_is_better else value <= target
    return "ok" if ok else "MISS"
