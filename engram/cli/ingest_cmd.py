"""`engram ingest`: mitmproxy flow files and the agents' own transcripts, once or followed.

Thin: what to read is resolved by `engram.sources.transcripts` (format detection, the
agents' locations), reading is `TranscriptReader`/`flowfile`, following is the same
daemon that runs the mitmweb watcher. This module adds what only a terminal has: the
progress bar, the summary, and the question before a paid analyzer gets a big backlog.
"""

from __future__ import annotations

import contextlib
import re
import signal
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from engram.cli import render
from engram.cli.base import app
from engram.cli.context import state
from engram.errors import ConfigError, EngramError

if TYPE_CHECKING:
    from engram.analyzer.backends import Backend
    from engram.cli.reporter import Reporter
    from engram.config import Config
    from engram.journaling import CapturePolicy
    from engram.runtime import Runtime
    from engram.sources.transcripts import ReadStats, TranscriptFollower
    from engram.store.db import Store

ONE_SHOT_SETTLE = 5.0  # a one-off read closes a file's last exchange once it is this quiet
_RELATIVE = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNIT = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str | None) -> float | None:
    """`2026-11-01`, an ISO 8601 time, or `7d` / `12h` / `2w` / `30m` ago."""
    if text is None:
        return None
    match = _RELATIVE.match(text)
    if match:
        return time.time() - int(match.group(1)) * _UNIT[match.group(2)]
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"--since {text!r}: not a date", hint="use 2026-11-01, an ISO time, or 7d / 12h / 2w"
        ) from None
    if when.tzinfo is None:
        when = when.astimezone()  # a bare date means local midnight
    return when.astimezone(UTC).timestamp()


def parse_agents(values: list[str] | None) -> list[str]:
    from engram.sources.transcripts import AGENTS

    names: list[str] = []
    for value in values or []:
        for name in (v.strip().lower() for v in value.split(",")):
            if not name:
                continue
            if name == "all":
                names.extend(AGENTS)
            elif name in AGENTS:
                names.append(name)
            else:
                raise ConfigError(
                    f"unknown agent {name!r} (one of: {', '.join(AGENTS)}, all)",
                    hint="opencode keeps its sessions in a database engram does not read yet",
                )
    return list(dict.fromkeys(names))


@app.command()
def ingest(
    ctx: typer.Context,
    paths: list[Path] | None = typer.Argument(
        None,
        metavar="[PATH]...",
        help="Files or directories: mitmproxy flow files (`mitmdump -w`) and Claude "
        "Code, Codex, Gemini CLI or Qwen Code transcripts, recognised by content.",
    ),
    agent: list[str] | None = typer.Option(
        None,
        "--agent",
        "-a",
        metavar="AGENT",
        help="Read an agent's sessions where it keeps them: claude, codex, gemini, "
        "qwen or all (repeat or comma-separate).",
    ),
    since: str | None = typer.Option(
        None, "--since", metavar="DATE", help="Only sessions active since DATE (or 7d, 12h)."
    ),
    project: Path | None = typer.Option(
        None, "--project", metavar="DIR", help="Only sessions run in DIR or below it."
    ),
    follow: bool = typer.Option(
        False,
        "--follow",
        "-f",
        help="After the back-fill, keep reading new lines and new sessions as they are "
        "written, analysing as the watcher does (Ctrl-C stops).",
    ),
    yes: bool = typer.Option(
        False, "--yes", "-y", help="Do not ask before a paid analyzer takes a big backlog."
    ),
    no_analyze: bool = typer.Option(
        False, "--no-analyze", help="Only journal; analyse later with `engram analyze`."
    ),
    analyzer: str | None = typer.Option(
        None, "--analyzer", metavar="NAME", help="auto, anthropic, openai, heuristic or none."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the counts as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only errors."),
    log_json: bool = typer.Option(
        False, "--log-json", help="With --follow: one JSON object per event."
    ),
) -> None:
    """Journal past sessions from flow files or agent transcripts (exactly once: a
    file read again adds nothing, and a turn the proxy or mitmweb captured already is
    not journaled twice), analyse them, and with --follow keep following."""
    from engram.sources import transcripts as tx

    st = state(ctx)
    cfg = st.config
    cfg.override("analyzer.backend", analyzer)
    agents = parse_agents(agent)
    if not paths and not agents:
        if not follow:
            raise ConfigError(
                "nothing to read: give files or directories, or --agent",
                hint="e.g. `engram ingest --agent claude`",
            )
        agents = parse_agents(list(cfg.transcripts.agents))
    after = parse_since(since)
    known: dict[Path, str | None] = {}  # detection done once, shared with the follower
    found, ignored = tx.resolve(paths or [], known)
    quiet = quiet or json_out
    if not quiet:
        _announce(paths or [], found, ignored)
    store = st.store
    store.ensure()
    follower = st.runtime.transcript_follower(
        agents=agents,
        paths=[p.expanduser() for p in paths or []],  # directories: new sessions in them too
        since=after,
        project=str(project.expanduser().absolute()) if project else None,
        settle=None if follow else ONE_SHOT_SETTLE,
        known=known,
    )
    flows = [f.path for f in found if f.kind == tx.FLOW]
    try:
        with _stop_on_sigterm():
            _run(
                st.runtime,
                follower,
                flows,
                agents,
                follow,
                yes,
                no_analyze,
                quiet,
                json_out,
                log_json,
            )
    except _Stopped:
        # What was committed stays; the rest is read again next time (offsets persist).
        if not quiet:
            render.note("stopped; what was read so far is journaled")


def _run(
    rt: Runtime,
    follower: TranscriptFollower,
    flows: list[Path],
    agents: list[str],
    follow: bool,
    yes: bool,
    no_analyze: bool,
    quiet: bool,
    json_out: bool,
    log_json: bool,
) -> None:
    store, cfg = rt.store, rt.config
    totals = _backfill(store, follower, flows, agents, rt.capture_policy(), progress=not quiet)
    if json_out:
        render.emit_json(totals)
    elif not quiet:
        typer.echo(_summary(totals))
        if not totals["files"] and agents:
            from engram.sources.transcripts import agent_roots

            places = [str(r) for a in agents for r in agent_roots(a, cfg.transcripts.roots())]
            render.note(f"no sessions found (looked in {', '.join(places)})")
    confirmed = True
    backend = None
    if not no_analyze:
        backend, label = _backend(cfg)
        if backend is not None:
            confirmed = _confirm(store, cfg, backend, yes=yes, quiet=quiet)
            if confirmed and not follow:
                _analyze(store, cfg, backend, label, quiet=quiet, json_out=json_out)
    if follow:
        _follow(
            rt,
            follower,
            backend,
            hold=not confirmed,
            quiet=quiet and not log_json,
            log_json=log_json,
        )


class _Stopped(Exception):
    pass


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """A service manager's SIGTERM during a long back-fill: stop cleanly (the batch in
    flight rolls back; offsets say where to carry on), exit 0 like the daemon does."""

    def stop(_signum: int, _frame: Any) -> None:
        raise _Stopped

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread (an embedding caller): nothing to install
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _announce(paths: list[Path], found: list[Any], ignored: int) -> None:
    """Say what each named path was recognised as."""
    from collections import Counter

    from engram.sources.transcripts import LABELS

    for path in paths:
        path = path.expanduser()
        if path.is_dir():
            inside = Counter(f.kind for f in found if path in f.path.parents)
            parts = [f"{n} {LABELS[k]}{'s' if n != 1 else ''}" for k, n in inside.items()]
            render.note(f"{path}: {', '.join(parts) or 'nothing engram reads'}")
        else:
            kind = next((f.kind for f in found if f.path == path), None)
            if kind is not None:
                render.note(f"{path}: {LABELS[kind]}")
    if ignored:
        render.note(f"({ignored} other files in those directories are not ones engram reads)")


def _backfill(
    store: Store,
    follower: TranscriptFollower,
    flows: list[Path],
    agents: list[str],
    policy: CapturePolicy,
    *,
    progress: bool,
) -> dict[str, Any]:
    from engram.sources.flowfile import ingest_file
    from engram.sources.transcripts import ReadStats
    from engram.sources.watcher import WatchSettings

    files = follower.files()
    totals: dict[str, Any] = {"agents": agents, "files": len(files) + len(flows)}
    stats = ReadStats()
    bar = _Bar(len(files) + len(flows), enabled=progress and sys.stderr.isatty())
    with bar:
        for path, kind in files:
            stats.add(follower.reader.read(path, kind))
            bar.advance(stats)
        flow_totals = dict.fromkeys(
            ("flows", "llm", "captured", "duplicates", "failed", "withheld"), 0
        )
        for path in flows:
            result = ingest_file(store, path, WatchSettings(capture=policy))
            for key in flow_totals:
                flow_totals[key] += getattr(result, key)
            if result.partial:
                render.note(f"{path}: ends in a partial record (still being written?)")
            bar.advance(stats, flows=flow_totals["captured"])
    totals.update(
        lines=stats.lines,
        flows=flow_totals["flows"],
        llm=flow_totals["llm"],
        captured=stats.pieces + flow_totals["captured"],
        exchanges=stats.pieces + flow_totals["captured"],
        turns=stats.turns,
        pending=stats.pending,
        duplicates=stats.duplicates + flow_totals["duplicates"],
        failed=flow_totals["failed"],
        withheld=stats.withheld + flow_totals["withheld"],
        bad_lines=stats.bad_lines,
        skipped_files=stats.skipped_files,
        still_open=stats.open_files,
        flow_files=len(flows),
    )
    return totals


class _Bar:
    """A progress bar on stderr (files, exchanges, turns) for a terminal; nothing else."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.enabled = enabled and total > 0
        self.total = total
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _Bar:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._progress = Progress(
                TextColumn("reading"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(
                    "files  {task.fields[exchanges]:,} exchanges  {task.fields[turns]:,} turns"
                ),
                console=render.err(),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("", total=self.total, exchanges=0, turns=0)
        return self

    def advance(self, stats: ReadStats, flows: int = 0) -> None:
        if self._progress is not None:
            self._progress.update(
                self._task, advance=1, exchanges=stats.pieces + flows, turns=stats.turns
            )

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def _summary(t: dict[str, Any]) -> str:
    text = (
        f"{t['files']} files, {t['lines']:,} new lines -> {t['exchanges']:,} exchanges journaled, "
        f"{t['turns']:,} new turns ({t['pending']:,} exchanges to analyze)"
    )
    extra = []
    if t["duplicates"]:
        extra.append(f"{t['duplicates']:,} already journaled")
    if t["withheld"]:
        extra.append(f"{t['withheld']} withheld (paused or an ignored project)")
    if t["bad_lines"]:
        extra.append(f"{t['bad_lines']} unreadable lines skipped")
    if t["skipped_files"]:
        extra.append(f"{t['skipped_files']} sessions of engram's own analyzer skipped")
    if t["still_open"]:
        extra.append(
            f"{t['still_open']} sessions still being written: their last exchange is read "
            "once they are quiet"
        )
    if t["flow_files"]:
        extra.append(f"{t['flows']} flows in flow files, {t['llm']} of them LLM calls")
    return text + ("; " + "; ".join(extra) if extra else "")


def _backend(cfg: Config) -> tuple[Backend | None, str]:
    from engram.analyzer.choose import choose

    return choose(cfg.analyzer.backend, cfg.analyzer)


def _confirm(store: Store, cfg: Config, backend: Backend, *, yes: bool, quiet: bool) -> bool:
    """Whether the pending backlog may go to this analyzer: always for a free one; for a
    paid one above `transcripts.confirm_turns`, only with --yes or a yes typed here."""
    from engram.analyzer.estimate import estimate, paid_model

    model = paid_model(backend, cfg.analyzer)
    if model is None or yes:
        return True
    est = estimate(store, cfg.analyzer, model)
    if est.turns <= cfg.transcripts.confirm_turns:
        return True
    price = f"${est.cost_usd:,.2f}" if est.priced else "an unknown price (no price for it)"
    render.note(
        f"Analysing {est.exchanges:,} exchanges ({est.turns:,} turns) with {model} takes "
        f"{est.calls:,} calls: about {est.input_tokens:,} input tokens and at most "
        f"{est.output_tokens:,} output tokens, at most {price}."
    )
    if sys.stdin.isatty() and not quiet:
        return typer.confirm("Analyse them now?", default=False, err=True)
    render.note(
        "Not analysing: pass --yes to accept, --no-analyze to only journal, or run "
        "`engram analyze` later."
    )
    return False


def _analyze(
    store: Store, cfg: Config, backend: Backend, label: str, *, quiet: bool, json_out: bool
) -> None:
    from engram.analyzer import runner

    if not quiet:
        render.note(f"analyzing pending exchanges with {label}")
    report = runner.Analyzer(store, backend, cfg.analyzer).run()
    if report.auth_error:
        raise EngramError(report.auth_error)
    if not quiet:
        from engram.cli.watch import show_report

        show_report(report)


def _follow(
    rt: Runtime,
    follower: TranscriptFollower,
    backend: Backend | None,
    *,
    hold: bool,
    quiet: bool,
    log_json: bool,
) -> None:
    from engram.cli.reporter import Reporter

    store, cfg = rt.store, rt.config
    reporter = Reporter(quiet=quiet, log_json=log_json)
    described = [t.agent or ", ".join(str(p) for p in t.paths) for t in follower.targets]
    reporter.banner(
        "engram: following agent transcripts",
        {
            "reading": "; ".join(described),
            "database": str(store.path),
            "interval": f"{cfg.transcripts.interval:g}s",
            "analyzer": backend.name if backend else "off (journal only)",
            "mirror": f"MuninnDB {cfg.muninn.url}" if cfg.muninn.enabled else "off",
        },
    )
    rt.scheduler(
        reporter,
        sources=[follower],
        analyze=analyze_hook(store, cfg, backend, hold=hold),
        sync=rt.mirror_job(),
        interval=cfg.transcripts.interval,
    ).run_forever()


def analyze_hook(store: Store, cfg: Config, backend: Backend | None, *, hold: bool) -> Any:
    """The daemon's analyze job. With `hold` (a paid analyzer nobody said yes to), it
    runs only while the pending backlog is within `transcripts.confirm_turns`: an
    unattended service never sends months of history to a paid model on its own."""
    from engram.analyzer.schedule import make_daemon_hook
    from engram.store import journal

    if backend is None:
        return None
    hook = make_daemon_hook(store, backend, cfg.analyzer)
    if not hold:
        return hook
    limit = cfg.transcripts.confirm_turns
    warned = [False]

    def guarded(reporter: Reporter) -> None:
        with store.read() as conn:
            _exchanges, turns = journal.pending_totals(conn)
        if turns > limit:
            if not warned[0]:
                reporter.warn(
                    "analyze_held",
                    f"not analysing: {turns:,} pending turns exceed transcripts.confirm_turns "
                    f"({limit:,}) for a paid analyzer; run `engram analyze` (or restart with "
                    "--yes) to let it through",
                )
                warned[0] = True
            return
        warned[0] = False
        hook(reporter)

    return guarded
