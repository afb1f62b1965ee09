"""`engram status` and `engram doctor`."""

from __future__ import annotations

import typer

from engram.cli import render
from engram.cli.base import app
from engram.cli.context import state

ICON = {
    "ok": "[green]ok[/]",
    "warn": "[yellow]warn[/]",
    "fail": "[red]FAIL[/]",
    "skip": "[dim]skip[/]",
}


@app.command()
def status(
    ctx: typer.Context,
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """What the watcher and analyzer are doing right now (fast: `watch engram status`)."""
    from engram.sources.capture_spool import quarantined
    from engram.status import gather

    st = state(ctx)
    with st.store.read() as conn:
        data = gather(conn, mirror_enabled=st.config.muninn.enabled)
    # Exchanges the proxy captured and the journal refused for good (in RAM, not the db).
    data["capture_quarantine"] = quarantined(st.store.path)
    if json_out:
        render.emit_json(data)
        return
    if data["paused"] is not None:
        from engram.cli.privacy import describe_pause

        render.line(f"PAUSED {describe_pause(data['paused'])}: nothing is captured or analysed")
    poll = data["last_poll"]
    if poll:
        render.line(f"last poll: {poll.get('at', '?')}  {poll.get('summary', '')}")
    elif data["captured_by_source"].get("mitmweb"):
        render.line("last poll: none recorded (is `engram mitmproxy` running?)")
    elif not data["captured_by_source"]:
        render.line(
            "nothing captured yet: `engram run <agent>`, `engram proxy` or `engram mitmproxy`"
        )
    render.line(
        f"captured today: {data['captured_today']}   pending analysis: "
        f"{data['pending']}   failed: {data['failed']} "
        f"({data['failed_batches']} analysis batches)"
    )
    refused = data["capture_quarantine"]
    if refused:
        render.line(
            f"not journaled: {refused['exchanges']} captured exchanges the journal refused, "
            f"kept in {refused['path']} until a reboot (last: {refused['last_reason']})"
        )
    if data["transcripts"]:
        render.line(
            "transcripts read: "
            + ", ".join(
                f"{t['agent']} {t['files']} files ({t['exchanges']} exchanges, {t['turns']} turns)"
                for t in data["transcripts"]
            )
        )
    if data.get("recall_today"):
        from engram.recall.audit import summarize

        outcomes = data["recall_today"]
        got = outcomes.get("injected", 0)
        rate = 100 * got / max(sum(outcomes.values()), 1)
        render.line(f"recall today: {summarize(outcomes, 'request')} [{rate:.0f}% injected]")
    run = data["last_analyzer_run"]
    if run:
        render.line(
            f"last analyzer run: {run['started_at'][:19].replace('T', ' ')} "
            f"{run['backend']} {run['status']}: +{run['added']} "
            f"~{run['superseded']} -{run['forgotten']}"
            + (f" ({run['error']})" if run["error"] else "")
        )
    backlog = data["mirror_backlog"]
    if backlog is None:
        render.line("mirror: disabled")
    else:
        render.line(
            f"mirror backlog: {backlog.get('pending', 0)} pending, "
            f"{backlog.get('failed', 0)} failed"
        )
    render.line(f"memories: {data['memories']}")
    if data["awaiting_review"]:
        render.line(f"awaiting review: {data['awaiting_review']} (see `engram review`)")
    if data["memories_by_kind"]:
        render.table(["kind", "memories"], [[k, n] for k, n in data["memories_by_kind"].items()])
        render.table(
            ["project", "memories"],
            [[render.scope_label(k), n] for k, n in list(data["memories_by_project"].items())[:15]],
        )


@app.command()
def doctor(
    ctx: typer.Context,
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Check every part of the set-up and say how to fix what fails. Exit code 0 only
    when everything required passes."""
    from engram.doctor import healthy, run_all

    st = state(ctx)
    checks = run_all(st.config, st.db_path)
    ok = healthy(checks)
    if json_out:
        render.emit_json({"healthy": ok, "checks": [c.to_dict() for c in checks]})
    else:
        from rich import box
        from rich.table import Table

        table = Table("", "area", "check", "found", "fix", box=box.SIMPLE_HEAD)
        for c in checks:
            table.add_row(ICON[c.status], c.area, c.name, c.detail, c.fix)
        render.out().print(table)
        render.note("all required checks pass" if ok else "some required checks fail")
    if not ok:
        raise typer.Exit(1)
