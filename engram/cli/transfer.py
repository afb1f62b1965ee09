"""`engram export` and `engram import`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from engram.cli import render
from engram.cli.base import app
from engram.cli.context import state
from engram.cli.memories import decode_utf8, parse_scope
from engram.errors import EngramError


@app.command()
def export(
    ctx: typer.Context,
    fmt: str = typer.Option("jsonl", "--format", help="`jsonl` (for import) or `markdown`."),
    scope: str | None = typer.Option(None, "--scope", "-s", help="Only this scope."),
    all_: bool = typer.Option(False, "--all", "-a", help="Include superseded and forgotten."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to a file."),
) -> None:
    """Write memories to stdout (or a file) as JSONL or Markdown."""
    from engram.store import reader, transfer

    if fmt not in ("jsonl", "markdown"):
        raise EngramError(f"unknown format {fmt!r} (jsonl or markdown)")
    with state(ctx).store.read() as conn:
        rows = reader.list_memories(conn, scope=parse_scope(scope), include_all=all_)
    rows.reverse()  # oldest first: an import replays history in order
    lines = transfer.export_jsonl(rows) if fmt == "jsonl" else transfer.export_markdown(rows)
    if output is None:
        sys.stdout.writelines(lines)
        return
    try:  # memories are private: 0600 like the database, whatever the umask
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.writelines(lines)
    except OSError as exc:
        raise EngramError(f"cannot write {output}: {exc.strerror}") from None
    render.note(f"exported {len(rows)} memories to {output}")


@app.command("import")
def import_(
    ctx: typer.Context,
    file: str = typer.Argument(..., metavar="FILE", help="A JSONL file; `-` reads stdin."),
    json_out: bool = typer.Option(False, "--json", help="Print the counts as JSON."),
) -> None:
    """Import memories from JSONL (`content`, `kind`, `scope`, optional `created_at`).
    Idempotent: facts already known are not added again."""
    from engram.store import transfer

    if file == "-":
        raw, name = sys.stdin.buffer.read(), "stdin"
    else:
        try:
            raw, name = Path(file).read_bytes(), file
        except OSError as exc:
            raise EngramError(f"cannot read {file}: {exc.strerror}") from None
    records, skipped = transfer.parse_jsonl(decode_utf8(raw, name), name)
    with state(ctx).store.write() as session:
        result = transfer.apply_import(session, records, skipped)
    if json_out:
        render.emit_json(
            {"added": result.added, "existing": result.existing, "skipped": result.skipped}
        )
        return
    typer.echo(
        f"imported {result.added} new, {result.existing} already known"
        + (f", {result.skipped} inactive skipped" if result.skipped else "")
    )
