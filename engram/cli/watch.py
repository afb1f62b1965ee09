"""Capture commands: `engram mitmproxy`, `engram journal`, `engram analyze`, `engram addon-path`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from engram.cli import render
from engram.cli.base import app
from engram.cli.context import state
from engram.errors import ConfigError, EngramError

if TYPE_CHECKING:
    from engram.analyzer.runner import RunReport
    from engram.sources.scheduler import PollSource

ANALYZERS = ("auto", "anthropic", "claude-code", "local", "openai", "heuristic", "none")


@app.command()
def mitmproxy(
    ctx: typer.Context,
    url: str | None = typer.Option(
        None, "--url", help="mitmweb's web API. [default: http://127.0.0.1:8081]"
    ),
    token: str | None = typer.Option(
        None, "--token", help="mitmweb's web_password (env ENGRAM_MITMWEB_TOKEN)."
    ),
    interval: float | None = typer.Option(
        None, "--interval", min=0.1, help="Seconds between polls. [default: 5]"
    ),
    batch: int | None = typer.Option(
        None, "--batch", min=1, help="Analyze once N exchanges are pending. [default: 10]"
    ),
    max_wait: float | None = typer.Option(
        None,
        "--max-wait",
        min=0,
        help="Analyze a partial batch after its oldest exchange waited S seconds. [default: 60]",
    ),
    analyzer: str | None = typer.Option(
        None,
        "--analyzer",
        help="auto, anthropic, claude-code, local, openai, heuristic or none. [default: auto]",
    ),
    prune: bool | None = typer.Option(
        None,
        "--prune/--no-prune",
        help="Delete flows from mitmweb once journaled (keeps mitmweb fast). [default: prune]",
    ),
    flow_file: Path | None = typer.Option(
        None, "--flow-file", help="Follow a growing `mitmdump -w` file instead of the web API."
    ),
    transcripts: str | None = typer.Option(
        None,
        "--transcripts",
        metavar="AGENTS",
        help="Also follow these agents' transcripts (claude,codex,gemini,qwen or all) in "
        "the same process.",
    ),
    once: bool = typer.Option(False, "--once", help="Poll once, analyze what is pending, exit."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only errors."),
    log_json: bool = typer.Option(False, "--log-json", help="One JSON object per event."),
) -> None:
    """Watch mitmweb for LLM API traffic, journal every exchange exactly once, and
    distil memories from the new conversation turns."""
    from engram.cli.reporter import Reporter

    st = state(ctx)
    cfg = st.config
    for name, value in (
        ("mitmproxy.url", url),
        ("mitmproxy.token", token),
        ("mitmproxy.interval", interval),
        ("analyzer.batch", batch),
        ("analyzer.max_wait", max_wait),
        ("mitmproxy.prune", prune),
    ):
        cfg.override(name, value)
    m, a = cfg.mitmproxy, cfg.analyzer
    cfg.override("analyzer.backend", analyzer)
    if cfg.analyzer.backend not in ANALYZERS:
        raise ConfigError(
            f"unknown analyzer {cfg.analyzer.backend!r} (one of: {', '.join(ANALYZERS)})"
        )
    reporter = Reporter(quiet=quiet, log_json=log_json)
    rt = st.runtime
    rt.store.ensure()
    analyze, analyzer_label = rt.analyzer()
    source: PollSource
    if flow_file is not None:
        source = rt.flow_file_watcher(flow_file)
        where = f"flow file {flow_file}"
    else:
        source = rt.watcher(reporter.warn)
        where = m.url
    reporter.banner(
        "engram: watching LLM traffic",
        {
            "source": where,
            "database": str(rt.store.path),
            "poll interval": f"{m.interval:g}s",
            "batch size": a.batch,
            "max wait": f"{a.max_wait:g}s",
            "analyzer": analyzer_label,
            "mirror": f"MuninnDB {cfg.muninn.url}" if cfg.muninn.enabled else "off",
            "prune": ("on: captured flows are deleted from mitmweb" if m.prune else "off")
            if flow_file is None
            else "n/a",
        },
    )
    from engram.cli.ingest_cmd import parse_agents

    agents = parse_agents([transcripts] if transcripts else [])
    sources: list[PollSource] = [source]
    if agents:
        sources.append(rt.transcript_follower(agents=agents))
    scheduler = rt.scheduler(reporter, sources=sources, analyze=analyze, sync=rt.mirror_job())
    if once:
        outcome, *_transcripts = scheduler.run_once()
        if outcome is None:
            raise typer.Exit(1)
        return
    scheduler.run_forever()


journal_app = typer.Typer(help="The journal of captured exchanges.", invoke_without_command=True)
app.add_typer(journal_app, name="journal")


@journal_app.callback()
def journal_list(
    ctx: typer.Context,
    failed: bool = typer.Option(False, "--failed", help="Only exchanges that failed."),
    status: str | None = typer.Option(
        None, "--status", help="pending, analyzed, skipped or failed."
    ),
    limit: int = typer.Option(50, "--limit", "-n", min=1),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List captured exchanges, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    from engram.store import journal

    with state(ctx).store.read() as conn:
        rows = journal.list_exchanges(conn, failed=failed, status=status, limit=limit)
    if json_out:
        render.emit_json(rows)
        return
    if not rows:
        render.note("the journal is empty" if not (failed or status) else "nothing matches")
        return
    from engram.recall.audit import short

    short_kind = {"conversation": "conv", "side-call": "side", "internal": "internal"}
    render.table(
        ["id", "captured", "kind", "new", "status", "memory", "project", "detail"],
        [
            [
                r["id"],
                r["captured_at"][5:19].replace("T", " "),
                short_kind[r["kind"]],
                r["new_turns"],
                r["status"],
                short(r["recall"]),
                render.scope_label(r["project"] or "") or "?",
                r["error"] or r["model"] or "",
            ]
            for r in rows
        ],
    )


@journal_app.command("show")
def journal_show(
    ctx: typer.Context,
    exchange_id: int = typer.Argument(..., metavar="ID"),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Print one exchange: its metadata and the turns it added to the conversation."""
    from engram.store import journal

    with state(ctx).store.read() as conn:
        data = journal.get_exchange(conn, exchange_id)
    if json_out:
        render.emit_json(data)
        return
    console = render.out()
    console.print(f"[bold]exchange {data['id']}[/]  {data['kind']}  {data['status']}")
    for key in (
        "source",
        "source_key",
        "format",
        "endpoint",
        "model",
        "conversation",
        "project",
        "status_code",
        "captured_at",
        "input_tokens",
        "output_tokens",
        "error",
    ):
        if data.get(key) not in (None, ""):
            console.print(f"  [dim]{key:>13}[/] {data[key]}", highlight=False)
    if data.get("recall") is not None or data["source"] in ("proxy", "addon"):
        from engram.recall.audit import describe

        console.print(f"  [dim]{'recall':>13}[/] {describe(data.get('recall'))}", highlight=False)
    for turn in data["turns"]:
        console.print(f"\n[bold]{turn['role']}[/]")
        if turn.get("text"):
            console.print(turn["text"], markup=False, highlight=False)
        for call in turn.get("tool_calls", []):
            console.print(
                f"  -> {call['name']}({render.short(call['arguments'], 200)})",
                markup=False,
                highlight=False,
            )
        for res in turn.get("tool_results", []):
            console.print(
                f"  <- {render.short(res['content'], 200)}", markup=False, highlight=False
            )


@app.command()
def analyze(
    ctx: typer.Context,
    limit: int | None = typer.Option(
        None, "--limit", "-n", min=1, help="At most N pending exchanges."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the commands the model proposes; apply none."
    ),
    retry: bool = typer.Option(False, "--retry", help="First re-queue batches parked as failed."),
    analyzer: str | None = typer.Option(
        None, "--analyzer", help="auto, anthropic, claude-code, local, openai or heuristic."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the run's report as JSON."),
) -> None:
    """Run the analyzer on pending exchanges now (the watcher does this by itself)."""
    st = state(ctx)
    cfg = st.config
    cfg.override("analyzer.backend", analyzer)
    if retry:
        from engram.store import journal

        with st.store.write() as session:
            requeued = journal.retry_failed(session)
        render.note(f"re-queued {requeued} exchanges")
    backend, label = st.runtime.analyzer_backend()
    if backend is None:
        raise EngramError(
            "the analyzer is set to `none`; pass --analyzer heuristic, local, claude-code "
            "or anthropic"
        )
    if not json_out:
        render.note(f"analyzer: {label}")
    report = st.runtime.analyzer_run(backend).run(limit=limit, dry_run=dry_run)
    if report.auth_error:
        raise EngramError(report.auth_error)
    if report.paused is not None and not report.batches:
        from engram.cli.privacy import describe_pause

        raise EngramError(
            f"engram is paused {describe_pause(report.paused)}; nothing was analysed",
            hint="`engram resume` ends the pause",
        )
    if json_out:
        render.emit_json(report.to_dict())
        return
    if dry_run:
        for line in report.proposed:
            typer.echo(line)
        render.note(
            f"{report.batches} batches, {len(report.proposed)} commands proposed (nothing applied)"
        )
        return
    show_report(report)
    if report.failed_batches:
        raise typer.Exit(1)


def show_report(report: RunReport) -> None:
    """What an analyzer run stored, then one line of totals (`engram analyze`, `ingest`)."""
    from engram.analyzer.schedule import describe

    for line in describe(report):
        typer.echo(line.strip())
    render.note(
        f"{report.exchanges} exchanges analyzed in {report.batches} batches: "
        f"{len(report.added)} new, {len(report.superseded)} updated, "
        f"{len(report.forgotten)} forgotten, {report.duplicates} already known, "
        f"{len(report.held)} held for review, "
        f"{len(report.rejected)} rejected; {report.input_tokens:,} tokens in, "
        f"${report.cost_usd:.4f}"
    )
    for error in report.errors:
        render.note(f"failed batch: {error} (kept pending: the next run retries it)")


@app.command("addon-path")
def addon_path() -> None:
    """Print the path of engram's mitmproxy addon, for `mitmweb -s "$(engram addon-path)"`."""
    from engram.sources import addon

    typer.echo(str(Path(addon.__file__).resolve()))
