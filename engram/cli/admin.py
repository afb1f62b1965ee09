"""`engram stats`, `engram db ...` and `engram config ...`."""

from __future__ import annotations

import typer

from engram.cli import render
from engram.cli.base import app
from engram.cli.context import state


def _size(path) -> int:
    total = 0
    for suffix in ("", "-wal", "-shm"):
        p = path.with_name(path.name + suffix)
        if p.exists():
            total += p.stat().st_size
    return total


@app.command()
def stats(
    ctx: typer.Context, json_out: bool = typer.Option(False, "--json", help="Print JSON.")
) -> None:
    """Counts by kind, scope and status, and the database size."""
    from engram.store import journal, reader, review, runs

    st = state(ctx)
    with st.store.read() as conn:
        data = reader.stats(conn)
        data["analyzer"] = runs.costs(conn)
        data["analyzer_guard"] = {**runs.guard(conn), "awaiting_review": review.count(conn)}
        data["journal"] = journal.status_counts(conn)
    data["database"] = {"path": str(st.store.path), "bytes": _size(st.store.path)}
    if json_out:
        render.emit_json(data)
        return
    console = render.out()
    console.print(
        f"{data['memories']} memories, {data['events']} events; database "
        f"{st.store.path} ({data['database']['bytes'] / 1024:.0f} KiB)",
        highlight=False,
    )
    for title, key in (
        ("status", "by_status"),
        ("kind (active)", "by_kind"),
        ("scope (active)", "by_scope"),
    ):
        if data[key]:
            label = render.scope_label if key == "by_scope" else str
            render.table([title, "count"], [[label(k), v] for k, v in data[key].items()])
    if data["journal"]:
        render.table(["journal", "exchanges"], [[k, v] for k, v in data["journal"].items()])
    guard = data["analyzer_guard"]
    if any(guard.values()):
        render.table(
            ["analyzer guard", "count"],
            [
                ["commands over the per-conversation limit", guard["capped"]],
                ["global memories kept in their project", guard["rescoped"]],
                ["memories held for review (all time)", guard["quarantined"]],
                ["memories held for review now", guard["awaiting_review"]],
            ],
        )
    costs = data["analyzer"]
    if costs["total"]["runs"]:
        for title, rows in (("day", costs["per_day"]), ("project", costs["per_project"])):
            render.table(
                [
                    title,
                    "runs",
                    "tokens in",
                    "tokens out",
                    "cache read",
                    "cost (USD)",
                    "memories",
                ],
                [
                    [
                        render.scope_label(str(r[title])) if title == "project" else r[title],
                        r["runs"],
                        f"{r['input_tokens']:,}",
                        f"{r['output_tokens']:,}",
                        f"{r['cache_read_tokens']:,}",
                        f"{r['cost_usd']:.4f}",
                        r["added"],
                    ]
                    for r in rows
                ],
            )


db_app = typer.Typer(help="The database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("current")
def db_current(ctx: typer.Context) -> None:
    """Print the database's schema revision and the newest this engram knows."""
    from engram.store import schema

    st = state(ctx)
    revision = st.store.current_revision()
    typer.echo(
        f"{st.store.path}: revision {revision or '(empty)'}; head {schema.HEAD}"
        + ("" if revision == schema.HEAD else " (run `engram db upgrade`)")
    )


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Create the database or apply pending migrations (also done automatically)."""
    from engram.store import schema

    st = state(ctx)
    before = st.store.current_revision()
    st.store.ensure()
    typer.echo(
        f"{st.store.path}: revision {before or '(empty)'} -> {schema.HEAD}"
        if before != schema.HEAD
        else f"{st.store.path}: already at {schema.HEAD}"
    )


config_app = typer.Typer(help="Configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show")
def config_show(
    ctx: typer.Context, json_out: bool = typer.Option(False, "--json", help="Print JSON.")
) -> None:
    """Every setting's effective value and where it came from (secrets masked)."""
    from engram import config

    cfg = state(ctx).config
    rows = config.effective(cfg)
    if json_out:
        render.emit_json({"file": str(cfg.file) if cfg.file else None, "settings": rows})
        return
    render.note(f"config file: {cfg.file or '(none)'}")
    render.table(
        ["key", "value", "source"],
        [[r["key"], "(not set)" if r["value"] is None else r["value"], r["source"]] for r in rows],
    )
