"""Looking at and curating memories: add, list, show, edit, supersede, forget, restore,
search, log, stats, export, import.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from engram.cli import render
from engram.cli.base import app
from engram.cli.context import state
from engram.errors import EngramError
from engram.store import schema
from engram.store.records import MemoryRecord

KIND_HELP = "One of: " + ", ".join(schema.KINDS) + "."
JSON_HELP = "Print JSON instead of a table."


def parse_scope(value: str | None) -> str | None:
    """`global`, `project` (the git work tree around the current directory) or a path."""
    if value is None:
        return None
    if value == "global":
        return "global"
    from engram.paths import project_root

    if value == "project":
        return str(project_root())
    return str(Path(value).expanduser().resolve())


def read_text_arg(text: str, file: Path | None) -> str:
    """TEXT as given, or `-` for stdin, or --file; bytes must be UTF-8."""
    if file is not None:
        try:
            raw = file.read_bytes()
        except OSError as exc:
            raise EngramError(f"cannot read {file}: {exc.strerror}") from None
        return decode_utf8(raw, str(file))
    if text == "-":
        return decode_utf8(sys.stdin.buffer.read(), "stdin")
    return text


def decode_utf8(raw: bytes, name: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EngramError(f"{name} is not valid UTF-8 (byte {exc.start})") from None


def resolve(ctx: typer.Context, memory_id: str) -> str:
    from engram.store import reader

    with state(ctx).store.read() as conn:
        return reader.resolve_id(conn, memory_id)


def note_redaction(given: str, stored: str) -> None:
    """Say so when the store redacted a secret from what the user typed."""
    marker = "[REDACTED:"
    found = stored.count(marker) - given.count(marker)
    if found > 0:
        render.note(
            f"note: {found} secret{'s' if found > 1 else ''} redacted before storing "
            "(engram never stores credentials)"
        )


def memory_rows(memories: list[MemoryRecord]) -> list[list[str]]:
    return [
        [
            m.id,
            m.kind,
            render.scope_label(m.scope),
            render.short(m.content),
            m.created_at[:10],
            *([m.status] if m.status != "active" else []),
        ]
        for m in memories
    ]


def show_memories(memories: list[MemoryRecord], with_status: bool = False) -> None:
    columns = ["id", "kind", "scope", "content", "created"]
    rows = memory_rows(memories)
    if with_status:
        columns.append("status")
        rows = [r + ([""] if len(r) == 5 else []) for r in rows]
    render.table(columns, rows)


@app.command()
def add(
    ctx: typer.Context,
    text: str = typer.Argument("", help="The memory text; `-` reads it from stdin."),
    kind: str = typer.Option("fact", "--kind", "-k", help=KIND_HELP),
    scope: str = typer.Option(
        "global",
        "--scope",
        "-s",
        help="`global`, `project` (the current git work tree) or a project directory.",
    ),
    file: Path | None = typer.Option(None, "--file", "-f", help="Read the text from a file."),
    json_out: bool = typer.Option(False, "--json", help="Print the stored record as JSON."),
) -> None:
    """Remember a fact. Prints its id; a fact already known in that scope is not added
    twice (its existing id is printed and a note says so)."""
    from engram.store import memories

    content = read_text_arg(text, file)
    where = parse_scope(scope) or "global"
    if where != "global" and not Path(where).is_dir():
        render.note(f"warning: {where} does not exist (yet); the memory is stored for that project")
    with state(ctx).store.write() as session:
        result = memories.add(session, content, kind=kind, scope=where)
    if json_out:
        render.emit_json({**result.memory.to_dict(), "created": result.created})
        return
    typer.echo(result.memory.id)
    if not result.created:
        render.note(f"already remembered as {result.memory.id}; nothing added")
    note_redaction(content, result.memory.content)


@app.command("list")
def list_(
    ctx: typer.Context,
    scope: str | None = typer.Option(
        None, "--scope", "-s", help="Only this scope: `global`, `project` or a directory."
    ),
    kind: str | None = typer.Option(None, "--kind", "-k", help=KIND_HELP),
    all_: bool = typer.Option(False, "--all", "-a", help="Include superseded and forgotten."),
    limit: int | None = typer.Option(
        None,
        "--limit",
        "-n",
        min=0,
        help="At most N (0: no limit). Default: 50 in the table, all with --json.",
    ),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """List memories, newest first."""
    from engram.store import reader

    effective = limit if limit is not None else (None if json_out else 50)
    effective = None if effective == 0 else effective
    with state(ctx).store.read() as conn:
        rows = reader.list_memories(
            conn,
            scope=parse_scope(scope),
            kind=kind,
            include_all=all_,
            limit=None if effective is None else effective + 1,
        )
    more = effective is not None and len(rows) > effective
    rows = rows[:effective] if effective is not None else rows
    if json_out:
        render.emit_json([m.to_dict() for m in rows])
        return
    if not rows:
        render.note("no memories yet" if not (scope or kind) else "no memories match")
        return
    show_memories(rows, with_status=all_)
    if more:
        render.note(f"showing the newest {effective}; --limit 0 shows all")


@app.command()
def show(
    ctx: typer.Context,
    memory_id: str = typer.Argument(..., metavar="ID", help="An id or a unique prefix."),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Show one memory with its history."""
    from engram.store import reader

    with state(ctx).store.read() as conn:
        full = reader.resolve_id(conn, memory_id)
        memory = reader.get_memory(conn, full)
        history = reader.events(conn, memory_id=full, limit=100)
    if json_out:
        render.emit_json({**memory.to_dict(), "events": [e.to_dict() for e in history]})
        return
    console = render.out()
    console.print(f"[bold]{memory.id}[/]  {memory.kind}  {memory.status}")
    console.print(memory.content, markup=False, highlight=False)
    facts = [
        ("scope", memory.scope),
        ("source", memory.source),
        ("created", memory.created_at),
        ("updated", memory.updated_at),
        (
            "used",
            f"{memory.use_count} times"
            + (f", last {memory.last_used_at}" if memory.last_used_at else ""),
        ),
    ]
    if memory.superseded_by:
        facts.append(("superseded by", memory.superseded_by))
    if memory.provenance:
        facts.append(("from exchanges", ", ".join(memory.provenance)))
    for name, value in facts:
        console.print(f"  [dim]{name:>14}[/] {value}", highlight=False)
    if history:
        console.print()
        log_table(list(reversed(history)))


@app.command()
def edit(
    ctx: typer.Context,
    memory_id: str = typer.Argument(..., metavar="ID"),
    text: str = typer.Argument("", help="The new text; `-` reads stdin."),
    file: Path | None = typer.Option(None, "--file", "-f", help="Read the text from a file."),
) -> None:
    """Change a memory's text in place (the old text stays in its history)."""
    from engram.store import memories

    content = read_text_arg(text, file)
    full = resolve(ctx, memory_id)
    with state(ctx).store.write() as session:
        record = memories.edit(session, full, content)
    typer.echo(full)
    note_redaction(content, record.content)


@app.command()
def supersede(
    ctx: typer.Context,
    memory_id: str = typer.Argument(..., metavar="ID"),
    text: str = typer.Argument("", help="The corrected fact; `-` reads stdin."),
    kind: str | None = typer.Option(None, "--kind", "-k", help="Default: the old one's."),
    file: Path | None = typer.Option(None, "--file", "-f", help="Read the text from a file."),
) -> None:
    """Replace a memory by a corrected one; prints the new id. The old one is kept,
    marked superseded and linked to its replacement."""
    from engram.store import memories

    content = read_text_arg(text, file)
    full = resolve(ctx, memory_id)
    with state(ctx).store.write() as session:
        _old, new = memories.supersede(session, full, content, kind=kind)
    typer.echo(new.id)
    note_redaction(content, new.content)


@app.command()
def forget(ctx: typer.Context, memory_id: str = typer.Argument(..., metavar="ID")) -> None:
    """Stop using a memory (kept in the store; `engram restore` undoes it)."""
    from engram.store import memories

    full = resolve(ctx, memory_id)
    with state(ctx).store.write() as session:
        memories.forget(session, full)
    typer.echo(f"forgot {full}")


@app.command()
def restore(ctx: typer.Context, memory_id: str = typer.Argument(..., metavar="ID")) -> None:
    """Make a forgotten or superseded memory active again."""
    from engram.store import memories

    full = resolve(ctx, memory_id)
    with state(ctx).store.write() as session:
        memories.restore(session, full)
    typer.echo(f"restored {full}")


@app.command()
def search(
    ctx: typer.Context,
    query: str = typer.Argument(..., help="Words to look for."),
    scope: str | None = typer.Option(None, "--scope", "-s", help="Only this scope."),
    kind: str | None = typer.Option(None, "--kind", "-k", help=KIND_HELP),
    limit: int = typer.Option(20, "--limit", "-n", min=1),
    mode: str = typer.Option(
        "hybrid",
        "--mode",
        "-m",
        help="hybrid (BM25 and meaning, as recall ranks), semantic (meaning only) or "
        "bm25 (words only).",
    ),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Search active memories, best match first (by default as recall ranks them: words
    and meaning; the score is recall's probability that the memory is relevant, 0..1)."""
    from engram.store import reader

    if mode not in ("hybrid", "semantic", "bm25"):
        raise EngramError(f"--mode must be hybrid, semantic or bm25, got {mode!r}")
    if mode == "bm25":
        with state(ctx).store.read() as conn:
            hits = reader.search(conn, query, scope=parse_scope(scope), kind=kind, limit=limit)
        scored = [(h.memory, h.score) for h in hits]
    else:
        from engram.recall.search import semantic_search

        scored = semantic_search(
            state(ctx).store,
            state(ctx).config,
            query,
            scope=parse_scope(scope),
            kind=kind,
            limit=limit,
            semantic_only=mode == "semantic",
        )
    if json_out:
        render.emit_json([{**m.to_dict(), "score": round(s, 4)} for m, s in scored])
        return
    if not scored:
        render.note("no matches")
        return
    render.table(
        ["score", "id", "kind", "scope", "content"],
        [
            [f"{s:.2f}", m.id, m.kind, render.scope_label(m.scope), render.short(m.content)]
            for m, s in scored
        ],
    )


@app.command()
def log(
    ctx: typer.Context,
    limit: int = typer.Option(50, "--limit", "-n", min=1),
    memory_id: str | None = typer.Option(None, "--memory", "-m", help="Only this memory."),
    action: list[str] = typer.Option(
        [], "--action", help="Only these actions (repeatable), e.g. `--action inject`."
    ),
    all_: bool = typer.Option(
        False, "--all", "-a", help="Every event, including each injection into a request."
    ),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """The history of changes (add, edit, supersede, forget, restore, import), newest
    first. Injections (one event per request that got a memory) are left out unless asked
    for with --all or --action inject."""
    from engram.store import reader, schema

    unknown = sorted(set(action) - set(schema.ACTIONS))
    if unknown:
        raise EngramError(f"unknown action {unknown[0]!r} (one of: {', '.join(schema.ACTIONS)})")
    actions = action or (None if all_ else [a for a in schema.ACTIONS if a != "inject"])
    with state(ctx).store.read() as conn:
        full = reader.resolve_id(conn, memory_id) if memory_id else None
        history = reader.events(conn, limit=limit, memory_id=full, actions=actions)
    if json_out:
        render.emit_json([e.to_dict() for e in history])
        return
    if not history:
        render.note("no events yet")
        return
    log_table(history)


def log_table(history: list) -> None:
    def describe(detail: dict) -> str:
        if "content" in detail:
            return render.short(detail["content"], 70)
        if "new" in detail:
            return "-> " + render.short(detail["new"], 67)
        return ", ".join(f"{k}={v}" for k, v in detail.items())

    render.table(
        ["time", "action", "memory", "by", "detail"],
        [
            [e.at[:19].replace("T", " "), e.action, e.memory_id, e.actor, describe(e.detail)]
            for e in history
        ],
    )
