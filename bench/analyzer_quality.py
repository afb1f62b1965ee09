"""Analyzer quality per backend on the labelled set (bench/data/analyzer_quality).

Every conversation runs through the whole pipeline in a fresh store: its memories
(`M:`) are stored first, it is captured as the agent's real request/response and
journaled (redaction included), and `Analyzer.run()` applies what the backend proposes
after validation. What the run stored is then scored against the labels:

- found: expected facts held by some stored memory (all keywords of the fact);
- precision: stored memories that hold an expected fact;
- violations: must-not-store items (assistant guesses the user corrected, questions,
  chatter, task state, copies of engram's memories) that some stored memory holds;
- secrets: stored memories holding a secret of the conversation or a redaction marker.

Backends: `heuristic`; `local-0.5b` and `local-1.5b` (the GGUF models from
`engram models fetch`, looked up in .tools/models, then <data dir>/models; as
configured by default, with the heuristic's facts merged in), `local-0.5b-alone` and
`local-1.5b-alone` (the model's own facts only, `analyzer.local_heuristic = false`); and
`anthropic-standin`, the real `anthropic` SDK path against the loopback stand-in API,
which answers like a careless model: each expected fact and each must-not item as the
conversation's own sentence that holds it, and engram's stored memories restated. It
measures the pipeline and validation (what survives), not Claude's judgement.

Targets (held-out half): local 1.5B found >= 0.5 with <= 5% violations; heuristic
found >= 0.35 with precision >= 0.9; no secret ever stored. `new-tune`/`new-check`
(session 5) and `new2-tune`/`new2-check` (session 6) are sets in other voices by the
rules' own author; `new3-tune`/`new3-check`, `new4-check` and `new5-check` (session 7)
are 300 conversations by fifteen other writers. Each check half is scored once (totals
only) before anyone reads it and then joins the tuning data; `heldout` and the newest
check half (`UNREAD`) are never read (bench/data/analyzer_quality/README.md).

    .venv/bin/python bench/analyzer_quality.py [--backends heuristic,local-0.5b,...]
        [--half both|tuning|heldout|new-tune|...|new5-check]  (comma-separated)
        [--details]  # misses and junk, tuning halves only
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))
import quality_set as qs

from engram import journaling
from engram.analyzer.backends import Backend
from engram.analyzer.runner import Analyzer
from engram.config import AnalyzerConfig
from engram.store import memories
from engram.store.db import Store
from engram.wire.model import RawRequest, RawResponse

FAKE_KEY = "sk-ant-api03-" + "benchquality" * 6
BACKENDS = ("heuristic", "local-0.5b", "local-1.5b", "anthropic-standin")
HALVES = (
    "tuning",
    "heldout",
    "new-tune",
    "new-check",
    "new2-tune",
    "new2-check",
    "new3-tune",
    "new3-check",
    "new4-check",
    "new5-check",
)
REJECTED: list[str] = []  # what validation rejected, for --details
# The halves whose details may be read. `new-check` and `new2-check` were each scored
# once, as unseen voices (sessions 5 and 6), and joined the tuning data in session 7;
# so did `new3-check` (by other writers) and then `new4-check` (100 conversations by five
# more writers), each once scored. `new5-check` (100 more, by five more writers) and
# `heldout` are never read.
UNREAD = ("heldout", "new5-check")
TUNING_HALVES = tuple(half for half in HALVES if half not in UNREAD)


def model_path(name: str) -> Path | None:
    from engram.analyzer import models

    spec = models.MODELS[name]
    for directory in (ROOT / ".tools" / "models", models.models_dir()):
        if (directory / spec.file).is_file():
            return directory / spec.file
    return None


def run_conversation(
    conv: qs.Conversation, backend: Backend, settings: AnalyzerConfig, embedder: Any
) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "quality.db")
        seeded: set[str] = set()
        with store.write() as session:
            for text in conv.memories:
                res = memories.add(session, text, kind="fact", scope=conv.project or "global")
                seeded.add(res.memory.id)
            body, response, path = qs.request_response(conv)
            request = RawRequest(
                body=json.dumps(body).encode(),
                path=path,
                host="api.anthropic.com" if conv.shape == "cc" else "api.openai.com",
                timestamp_start=1_000_000.0,
            )
            journaling.record(
                session,
                journaling.Capture(
                    "file",
                    f"quality-{conv.id}",
                    request,
                    RawResponse(status_code=200, body=json.dumps(response).encode()),
                    project_hint=conv.project,
                ),
                journaling.CapturePolicy(),  # nothing ignored
            )
        report = Analyzer(store, backend, settings, embedder=embedder).run()
        REJECTED.extend(f"{conv.id}: {r}" for r in report.rejected)
        REJECTED.extend(f"{conv.id}: error {e}" for e in report.errors)
        with store.read() as conn:
            rows = conn.execute(
                "SELECT id, content FROM memories WHERE status = 'active'"
            ).fetchall()
        return [content for mid, content in rows if mid not in seeded]


def standin_answer(conv: qs.Conversation) -> str:
    """What a careless model would write for `conv` (see the module docstring)."""
    sentences = []
    for turn in conv.turns:
        texts = [turn.get("text") or ""]
        texts += [r.get("content") or "" for r in turn.get("tool_results") or ()]
        for text in texts:
            sentences += [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip()]

    def holding(pred: Callable[[str], bool]) -> str | None:
        return next((s for s in sentences if pred(qs.norm(s))), None)

    lines = []
    for fact in conv.expect:
        best = max(
            sentences,
            key=lambda s: sum(any(qs.norm(a) in qs.norm(s) for a in k) for k in fact),
            default=None,
        )
        if best:
            lines.append(f"engram add --kind fact --scope project {json.dumps(best)}")
    for phrase in conv.forbid:
        found = holding(lambda s, p=qs.norm(phrase): p in s)
        if found:
            lines.append(f"engram add --kind fact --scope project {json.dumps(found)}")
    for text in conv.memories:
        lines.append(f"engram add --kind fact --scope project {json.dumps('Note: ' + text)}")
    if conv.project is None:
        lines = [line.replace("--scope project", "--scope global") for line in lines]
    return "\n".join(lines) or "NONE"


def make_backend(
    name: str,
) -> tuple[Backend, Callable[[qs.Conversation], None], Callable[[], None]]:
    """(backend, per-conversation setup, teardown)."""
    if name == "heuristic":
        from engram.analyzer.backends import HeuristicBackend

        return HeuristicBackend(), lambda _c: None, lambda: None
    if name.startswith("local-"):
        from engram.analyzer.backend_local import LocalBackend

        size, _, variant = name.split("-", 1)[1].partition("-")
        path = model_path(size)
        if path is None:
            raise LookupError(f"{name}: model not installed (engram models fetch)")
        backend = LocalBackend(
            model_path=path, max_output_tokens=512, with_heuristic=variant != "alone"
        )
        return backend, lambda _c: None, lambda: None
    if name == "anthropic-standin":
        from engram.analyzer.backends import AnthropicBackend
        from tests.support.llm_stub import LLMStub, Reply

        stub = LLMStub().start()
        backend = AnthropicBackend(
            api_key=FAKE_KEY,
            model="claude-haiku-4-5",
            base_url=stub.url,
            timeout=30,
            retries=0,
            max_output_tokens=1024,
        )

        def setup(conv: qs.Conversation) -> None:
            stub.script = Reply(text=standin_answer(conv))

        return backend, setup, stub.stop
    raise SystemExit(f"unknown backend {name!r} (one of {', '.join(BACKENDS)})")


def table(title: str) -> Any:
    from rich.table import Table

    return Table(
        "half",
        "convs",
        "found",
        "precision",
        "violations",
        "secrets",
        "stored",
        "s/conv",
        title=title,
    )


def row(half: str, convs: int, score: qs.Score, seconds: float) -> list[str]:
    return [
        half,
        str(convs),
        f"{score.found_rate:.2f} ({score.found}/{score.expected})",
        f"{score.precision:.2f} ({score.correct}/{score.stored})",
        f"{score.violation_rate:.1%} ({score.violations}/{score.forbidden})",
        str(score.secrets),
        str(score.stored),
        f"{seconds:.1f}",
    ]


def summarize(path: Path, console: Any) -> None:
    """Tables from a --out file (a long local-model run can be read while it goes on)."""
    by_id = {c.id: c for c in qs.load()}
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        results.setdefault(r["backend"], {}).setdefault(r["half"], []).append(r)
    for name, halves in results.items():
        t = table(f"analyzer quality: {name}")
        for half in HALVES:
            rs = halves.get(half, [])
            if rs:
                score = qs.Score()
                for r in rs:
                    score.add(by_id[r["id"]], r["stored"])
                t.add_row(*row(half, len(rs), score, sum(r["seconds"] for r in rs) / len(rs)))
        console.print(t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument(
        "--half",
        default="both",
        help="comma-separated: both (= tuning,heldout) or any of " + ", ".join(HALVES),
    )
    parser.add_argument(
        "--details", action="store_true", help="misses and junk (tuning halves only)"
    )
    parser.add_argument("--only", default="", help="comma-separated conversation ids")
    parser.add_argument(
        "--out", type=Path, help="append each conversation's result to this JSONL file"
    )
    parser.add_argument(
        "--summarize", type=Path, help="print the tables from a --out file and exit"
    )
    args = parser.parse_args()
    from rich.console import Console

    if args.summarize:
        summarize(args.summarize, Console())
        return

    from engram.recall.embedder import WordLlamaEmbedder

    embedder = WordLlamaEmbedder()
    halves = qs.halves()
    wanted = ("tuning", "heldout") if args.half == "both" else tuple(args.half.split(","))
    unknown = set(wanted) - set(halves)
    if unknown:
        raise SystemExit(f"unknown half {', '.join(sorted(unknown))} (one of {', '.join(halves)})")
    only = set(filter(None, args.only.split(",")))
    settings = AnalyzerConfig()
    console = Console()
    for name in args.backends.split(","):
        try:
            backend, setup, teardown = make_backend(name)
        except LookupError as exc:
            console.print(f"skipped: {exc}")
            continue
        tab = table(f"analyzer quality: {name}")
        try:
            for half in wanted:
                score = qs.Score()
                convs = [c for c in halves[half] if not only or c.id in only]
                started = time.monotonic()
                REJECTED.clear()
                for conv in convs:
                    setup(conv)
                    t0 = time.monotonic()
                    stored = run_conversation(conv, backend, settings, embedder)
                    score.add(conv, stored)
                    if args.out:
                        with open(args.out, "a", encoding="utf-8") as f:
                            record = {"backend": name, "half": half, "id": conv.id}
                            record |= {"stored": stored, "seconds": time.monotonic() - t0}
                            f.write(json.dumps(record) + "\n")
                    print(".", end="", file=sys.stderr, flush=True)
                print(file=sys.stderr)
                elapsed = (time.monotonic() - started) / max(1, len(convs))
                tab.add_row(*row(half, len(convs), score, elapsed))
                if args.details and half in TUNING_HALVES:
                    for line in score.misses + score.junk + ["rejected:"] + REJECTED:
                        console.print(f"  {line}", markup=False)
        finally:
            teardown()
        console.print(tab)


if __name__ == "__main__":
    main()
