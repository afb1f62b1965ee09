"""`engram review`: memories held back because their text looked like a payload."""

from __future__ import annotations

import typer

from engram.cli import render
from engram.cli.base import app
from engram.cli.context import state

review_app = typer.Typer(
    help="Memories held for review: the analyzer's guard found a network pipeline "
    "(`curl … | sh`), a URL with a password or words aimed at the model in them. "
    "They are never injected or mirrored until you accept them.",
    invoke_without_command=True,
)
app.add_typer(review_app, name="review")


@review_app.callback()
def review_list(
    ctx: typer.Context,
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List memories held for review, oldest first, with why each was held.
    `engram review accept ID` makes one active; `engram review reject ID` drops it
    for good (the analyzer will not propose it again)."""
    if ctx.invoked_subcommand is not None:
        return
    from engram.store import review

    with state(ctx).store.read() as conn:
        items = review.held(conn)
    if json_out:
        render.emit_json([h.to_dict() for h in items])
        return
    if not items:
        render.note("nothing is held for review")
        return
    render.table(
        ["id", "kind", "scope", "content", "held because"],
        [
            [
                h.memory.id,
                h.memory.kind,
                render.scope_label(h.memory.scope),
                render.short(h.memory.content, 200)
                + (f" (would replace {h.supersedes})" if h.supersedes else ""),
                "; ".join(h.reasons) or "?",
            ]
            for h in items
        ],
    )
    render.note(f"{len(items)} held; `engram review accept ID` or `engram review reject ID`")


def _resolve(ctx: typer.Context, ids: list[str]) -> list[str]:
    from engram.store import reader

    with state(ctx).store.read() as conn:
        return [reader.resolve_id(conn, i) for i in ids]


@review_app.command("accept")
def accept(
    ctx: typer.Context,
    memory_ids: list[str] = typer.Argument(..., metavar="ID...", help="Ids or prefixes."),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Make held memories active: from now on they are recalled, injected and
    mirrored like any other (a held correction replaces its old memory now)."""
    from engram.store import review

    full = _resolve(ctx, memory_ids)
    with state(ctx).store.write() as session:
        results = [review.accept(session, m) for m in full]
    if json_out:
        render.emit_json(
            [
                {**r.memory.to_dict(), "superseded": r.superseded, "duplicate": r.duplicate}
                for r in results
            ]
        )
        return
    for held_id, r in zip(full, results, strict=True):
        if r.duplicate:
            typer.echo(f"{held_id}: already active as {r.memory.id}")
        elif r.superseded:
            typer.echo(f"accepted {r.memory.id} (replaces {r.superseded})")
        else:
            typer.echo(f"accepted {r.memory.id}")


@review_app.command("reject")
def reject(
    ctx: typer.Context,
    memory_ids: list[str] = typer.Argument(..., metavar="ID...", help="Ids or prefixes."),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Drop held memories for good (kept as forgotten, with a `reject` event, so the
    analyzer does not propose the same text again)."""
    from engram.store import review

    full = _resolve(ctx, memory_ids)
    with state(ctx).store.write() as session:
        results = [review.reject(session, m) for m in full]
    if json_out:
        render.emit_json([r.to_dict() for r in results])
        return
    for r in results:
        typer.echo(f"rejected {r.id}")
