"""`engram recall QUERY`: what the proxy would inject for a request, and why;
`engram recall reindex`: embed every memory for the configured model, with progress.

`engram recall QUERY` is the debugging tool for recall: the same `Recaller` the proxy
uses, run once, showing every candidate with its score (the gate model's probability
that it helps) and the gate's verdict on it. Nothing is logged and no use count
changes: it is a dry run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from engram.cli import render
from engram.cli.base import app
from engram.cli.context import state


class RecallGroup(TyperGroup):
    """`engram recall QUERY` keeps working beside `engram recall reindex`: anything that
    is not a subcommand's name is the query (`engram recall query reindex` searches for
    the word itself)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["query", *args]
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)


recall_app = typer.Typer(
    cls=RecallGroup,
    no_args_is_help=True,
    help="What recall would inject for a request (`engram recall QUERY`), and re-embedding "
    "memories for the configured model (`engram recall reindex`).",
)
app.add_typer(recall_app, name="recall")


@recall_app.command("query")
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
    """Show which memories would be injected for QUERY (the default: `engram recall
    QUERY`), with scores and reasons."""
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
        f"[dim]scopes:[/] {', '.join(result.scopes)}  [dim]gate:[/] {result.gate_model}"
        f"  [dim]min_score:[/] {result.min_score:.2f}  [dim]time:[/] "
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


@recall_app.command()
def reindex(
    ctx: typer.Context,
    force: bool = typer.Option(
        False, "--force", help="Re-embed every memory, not only those without a current vector."
    ),
) -> None:
    """Embed the memories that have no vector of the configured model yet (after changing
    recall.embedder, or an upgrade), with a progress bar. The proxy does the same in the
    background on its own, using BM25 alone until it is done; this is the foreground way.
    Ctrl-C stops it; what was stored is kept and the next run continues."""
    import threading

    from engram.errors import EngramError
    from engram.recall.embedder import make_embedder
    from engram.recall.reindex import embed_memories, stale
    from engram.store import vectors as vector_store

    st = state(ctx)
    embedder = make_embedder(st.config)
    if embedder is None:
        raise EngramError("recall.embedder is none: there is nothing to embed")
    st.store.ensure()
    embedder.load()
    if force:
        with st.store.read() as conn:
            ids = [row[0] for row in vector_store.active_with_vectors(conn, embedder.name)]
    else:
        ids = stale(st.store, embedder)
    if not ids:
        render.note(f"every memory has a vector of {embedder.name}")
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    stop = threading.Event()
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=render.err(),
        transient=False,
    ) as bar:
        task = bar.add_task(f"embedding for {embedder.name}", total=len(ids))
        try:
            done = embed_memories(
                st.store,
                embedder,
                ids,
                progress=lambda n, _total: bar.update(task, completed=n),
                stop=stop,
            )
        except KeyboardInterrupt:
            stop.set()
            render.note("stopped; the vectors stored so far are kept")
            raise typer.Exit(130) from None
    render.note(f"embedded {done} memories for {embedder.name}")
