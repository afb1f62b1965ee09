"""`engram recall`: what the proxy would inject for a request, and why.

The debugging tool for recall: the same `Recaller` the proxy uses, run once, showing
every candidate with its score and the gate's verdict on it. Nothing is logged and no
use count changes: it is a dry run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from engram.cli import render
from engram.cli.base import app
from engram.cli.context import state


@app.command()
def recall(
    ctx: typer.Context,
    query: str = typer.Argument(
        ...,
        help="The request text, as the user would type it to the agent; `-` reads it from stdin.",
    ),
    project: str | None = typer.Option(
        None,
        "--project",
        "-p",
        metavar="DIR",
        help="The agent's working directory (default: the current one); `global` for "
        "global memories only.",
    ),
    limit: int = typer.Option(
        10, "--limit", "-n", min=1, help="Candidates shown in the table (JSON has them all)."
    ),
    json_out: bool = typer.Option(
        False,
        "--json",
        help="Print JSON: injected, reason, "
        "candidates [{id, content, scope, score, injected}], ...",
    ),
) -> None:
    """Show which memories would be injected for QUERY, with scores and reasons."""
    from engram.cli.memories import decode_utf8

    if query == "-":
        query = decode_utf8(sys.stdin.buffer.read(), "stdin")
    st = state(ctx)
    where = (
        None
        if project == "global"
        else str(Path(project).expanduser().resolve() if project else Path.cwd())
    )
    recaller = st.runtime.recaller(background=False)
    try:
        recaller.warm()  # model and index first, so the time shown is recall's own
        result = recaller.recall(query, where)
    finally:
        recaller.close()
    if json_out:
        render.emit_json(result.to_dict())
        return
    console = render.out()
    verdict = "[bold green]inject[/]" if result.injected else "[bold]nothing to inject[/]"
    console.print(f"{verdict}: {result.reason}", highlight=False)
    console.print(f"[dim]query:[/] {render.short(result.query, 200)}", markup=True, highlight=False)
    console.print(
        f"[dim]scopes:[/] {', '.join(result.scopes)}  [dim]fusion:[/] "
        f"{recaller.config.fusion}  [dim]min_score:[/] "
        f"{recaller.config.min_score:.2f}  [dim]time:[/] "
        f"{result.timings_ms.get('total', 0):.1f} ms",
        highlight=False,
    )
    if not result.candidates:
        render.note("no candidates: no memory shares a word or much meaning with the query")
        return
    render.table(
        ["score", "in", "id", "kind", "scope", "content", "detail"],
        [
            [
                f"{c.score:.3f}",
                "yes" if c.injected else "",
                c.id,
                c.kind,
                render.scope_label(c.scope),
                render.short(c.content, 90),
                c.note,
            ]
            for c in result.candidates[:limit]
        ],
    )
    if result.block_text:
        console.print()
        console.rule("the block the agent would get", style="dim")
        console.print(result.block_text, markup=False, highlight=False)
