"""Run `python -m engram ...` with every garbage collection timed (bench/proxy.py).

Executed as the `-c` program of a benchmarked proxy (not imported: `python bench/x.py`
would put bench/ first on sys.path, where `proxy.py`, `store.py` and `wire.py` would
shadow modules of the same name). It appends (start, duration, generation, CPU seconds) of
every collection, on `time.perf_counter()` (CLOCK_MONOTONIC, so comparable with the
bench's own request times) and the collecting thread's CPU clock (a pause on a busy
machine is mostly waiting for a core: the CPU figure is the collection's own cost),
and writes them as JSON to `ENGRAM_BENCH_GC_LOG` when the process exits (the proxy
stops cleanly on SIGTERM).

Bench-only variants, for the A/B of the GC remedies before any of them ships:
`ENGRAM_BENCH_GC_THRESHOLD=a,b,c` calls `gc.set_threshold(a, b, c)` at start;
`ENGRAM_BENCH_GC_FREEZE=1` calls `gc.freeze()` once recall is warm (model, index and
a warm-up query: the same point engram's own setting would use).
"""

import atexit
import gc
import json
import os
import runpy
import sys
import time

_log: list[tuple[float, float, int, float]] = []
_started: list[float] = [0.0, 0.0]


def _on_gc(phase: str, info: dict) -> None:
    if phase == "start":
        _started[:] = time.perf_counter(), time.thread_time()
    else:
        now, cpu = time.perf_counter(), time.thread_time()
        _log.append((_started[0], now - _started[0], info["generation"], cpu - _started[1]))


def _dump() -> None:
    path = os.environ.get("ENGRAM_BENCH_GC_LOG")
    if path:
        with open(path, "w") as f:
            json.dump({"collections": _log, "frozen": gc.get_freeze_count()}, f)


gc.callbacks.append(_on_gc)
atexit.register(_dump)
if os.environ.get("ENGRAM_BENCH_GC_THRESHOLD"):
    gc.set_threshold(*(int(x) for x in os.environ["ENGRAM_BENCH_GC_THRESHOLD"].split(",")))
if os.environ.get("ENGRAM_BENCH_GC_FREEZE") == "1":
    from engram.recall import lifecycle

    _warm = lifecycle.IndexLifecycle.warm

    def warm(self: lifecycle.IndexLifecycle, background: bool = False) -> None:
        was_ready = self.ready
        _warm(self, background)
        if self.ready and not was_ready:
            gc.freeze()

    lifecycle.IndexLifecycle.warm = warm  # type: ignore[method-assign]

sys.argv = ["engram", *sys.argv[1:]]
runpy.run_module("engram", run_name="__main__", alter_sys=True)
