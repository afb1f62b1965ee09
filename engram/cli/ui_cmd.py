"""`engram ui`: the local web page (aiohttp and Jinja2 load only when it runs)."""

from __future__ import annotations

import typer

from engram.cli.base import app
from engram.cli.context import state


@app.command()
def ui(
    ctx: typer.Context,
    port: int | None = typer.Option(
        None,
        "--port",
        "-p",
        min=0,
        max=65535,
        help="Port on 127.0.0.1 (0: any free one). Default: 8789, or the next free one.",
    ),
    no_open: bool = typer.Option(
        False, "--no-open", help="Print the URL but do not open a browser."
    ),
) -> None:
    """A local web page to browse, search and curate memory, and to see what each
    agent request got from recall and why.

    Serves on 127.0.0.1 only. The printed URL carries a token that is new at every
    start; without it the server answers 403. Ctrl-C stops it. See docs/ui.md."""
    from engram.ui.launch import run

    run(state(ctx).runtime, port=port, open_browser=not no_open)
