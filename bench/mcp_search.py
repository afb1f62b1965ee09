"""`memory_search` latency at 10k memories: in-process and over the MCP stdio transport.

Target (issue 16): p50 <= 10 ms in-process, i.e. `MemoryTools.search` as the server's
tool handler runs it (recall's hybrid ranking over the session's project + global
scopes, the floor, one primary-key read per hit, redaction of the returned text). The
round trip through the real server (`engram mcp` over stdio, the SDK's own client)
adds JSON-RPC, pydantic validation and a worker-thread hop; it is printed for
information, the agent's own model call dwarfs both.

Memories and queries are recall_speed.py's (synthetic, shaped like real ones; the 154
eval requests as queries), in its "worst case" layout (every memory visible to the
session: half in its project, half global).

    python bench/mcp_search.py [--size 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from _util import print_table, summary, verdict
from recall_speed import PROJECT, fill, queries, synthetic


def in_process(path: Path, qs: list[str], runs: int) -> tuple[list[float], list[float], float]:
    from engram.config import Config
    from engram.mcp.memory import Caller, MemoryTools
    from engram.store.db import Store

    tools = MemoryTools(Store(path), Config())
    t = time.perf_counter()
    tools.warm(background=False)
    warm = time.perf_counter() - t
    caller = Caller("bench", PROJECT)
    for q in qs[:20]:
        tools.search(caller, q)
    samples, cpu = [], []
    for _ in range(runs):
        for q in qs:
            start, start_cpu = time.perf_counter(), time.thread_time()
            tools.search(caller, q, limit=5)
            samples.append((time.perf_counter() - start) * 1000)
            cpu.append((time.thread_time() - start_cpu) * 1000)
    return samples, cpu, warm


def over_stdio(path: Path, qs: list[str]) -> tuple[list[float], float]:
    import anyio
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    command = [sys.executable, "-m", "engram", "--db", str(path), "mcp", "--project", PROJECT]
    params = StdioServerParameters(
        command=command[0], args=command[1:], cwd="/", env=dict(os.environ)
    )
    samples: list[float] = []
    ready = 0.0

    async def run() -> None:
        nonlocal ready
        t = time.perf_counter()
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            ready = time.perf_counter() - t
            for q in qs[:20]:
                await session.call_tool("memory_search", {"query": q})
            for q in qs:
                start = time.perf_counter()
                result = await session.call_tool("memory_search", {"query": q})
                samples.append((time.perf_counter() - start) * 1000)
                assert not result.isError, result.content

    anyio.run(run)
    return samples, ready


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    qs = queries()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mcp-bench.db"
        fill(path, synthetic(args.size, "worst", random.Random(args.size)))
        subprocess.run(  # store every vector once, as a running engram has
            [sys.executable, "-m", "engram", "--db", str(path), "search", "warm up"],
            check=True,
            capture_output=True,
        )
        local, cpu, warm = in_process(path, qs, args.runs)
        remote, ready = over_stdio(path, qs)
    p50, p99 = summary(local)
    cpu50 = summary(cpu)[0]
    r50, r99 = summary(remote)
    k = args.size // 1000
    rows = [
        (
            f"memory_search in-process, {k}k memories, p50",
            f"{p50:.2f} ms",
            "<= 10 ms",
            verdict(p50, 10),
        ),
        ("  p99", f"{p99:.2f} ms", "", ""),
        ("  CPU time p50 (what a busy machine cannot inflate)", f"{cpu50:.2f} ms", "", ""),
        ("  model + index load (once per server)", f"{warm:.2f} s", "", ""),
        ("memory_search over stdio (SDK client), p50", f"{r50:.2f} ms", "", ""),
        ("  p99", f"{r99:.2f} ms", "", ""),
        ("  start to initialized (spawn, imports, handshake)", f"{ready:.2f} s", "", ""),
    ]
    load = os.getloadavg()
    print_table(
        f"MCP memory_search ({os.cpu_count()} CPUs, load average {load[0]:.1f} / "
        f"{load[1]:.1f} at the end)",
        rows,
    )


if __name__ == "__main__":
    main()
