"""`engram mirror status|sync|retry|pull`: the MuninnDB mirror by hand (the background
sync job is engram/mirror/job.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer

from engram.cli import render
from engram.cli.base import app
from engram.cli.context import state
from engram.errors import ConfigError, EngramError
from engram.mirror.job import describe

if TYPE_CHECKING:
    from engram.config import MuninnConfig
    from engram.store.db import Store

ENABLE_HINT = "set muninn.enabled = true in the config file, or ENGRAM_MUNINN_ENABLED=1"


def _require_enabled(m: MuninnConfig) -> None:
    if not m.enabled:
        raise ConfigError("the MuninnDB mirror is disabled", hint=ENABLE_HINT)


def _vaults(m: MuninnConfig) -> tuple[str, str, str]:
    """(the current project's scope, its vault, the global vault)."""
    from engram.mirror.vault import sanitize_vault, vault_for_scope
    from engram.paths import project_root

    scope = str(project_root())
    return scope, vault_for_scope(scope, m.vault, m.global_vault), sanitize_vault(m.global_vault)


def status_data(store: Store, m: MuninnConfig, warn: Callable[[str], None]) -> dict[str, Any]:
    from engram.mirror.client import MuninnAuthError, MuninnError
    from engram.store import outbox

    _scope, vault, global_vault = _vaults(m)
    with store.read() as conn:
        counts = outbox.counts(conn)
        states = outbox.get_states(conn)
        failed = outbox.failed_rows(conn, 10)
    reachable: bool | None = None
    authorized: bool | None = None
    problem = None
    try:
        from engram.mirror.vault import make_client

        with make_client(m, warn) as client:
            client.ping(timeout=min(m.timeout, 3.0))
        reachable = authorized = True
    except MuninnAuthError as exc:
        reachable, authorized, problem = True, False, str(exc)
    except (MuninnError, ConfigError) as exc:
        reachable, problem = (False if isinstance(exc, MuninnError) else None), str(exc)
    last_error = json.loads(states[outbox.K_ERROR]) if outbox.K_ERROR in states else None
    return {
        "enabled": m.enabled,
        "reachable": reachable,
        "authorized": authorized,
        "problem": problem,
        "url": m.url,
        "vault": vault,
        "global_vault": global_vault,
        "pending": counts["pending"],
        "failed": counts["failed"],
        "done": counts["done"],
        "last_success": states.get(outbox.K_SUCCESS),
        "last_error": last_error,
        "next_attempt_at": states.get(outbox.K_RETRY),
        "failed_operations": failed,
    }


mirror_app = typer.Typer(
    help="The MuninnDB mirror (memory shared across machines and agents).", no_args_is_help=True
)
app.add_typer(mirror_app, name="mirror")


@mirror_app.command("status")
def status(
    ctx: typer.Context, json_out: bool = typer.Option(False, "--json", help="Print JSON.")
) -> None:
    """Enabled, reachable, vaults, queued and failed operations, last success and error."""
    st = state(ctx)
    data = status_data(st.store, st.config.muninn, render.note)
    if json_out:
        render.emit_json(data)
        return
    reach = {True: "yes", False: "no", None: "unknown"}[data["reachable"]]
    err = data["last_error"]
    rows = [
        ("enabled", "yes" if data["enabled"] else f"no ({ENABLE_HINT})"),
        ("url", data["url"]),
        ("reachable", reach + (f" ({data['problem']})" if data["problem"] else "")),
        ("vault", f"{data['vault']} (this project), {data['global_vault']} (global)"),
        ("pending", data["pending"]),
        ("failed", data["failed"]),
        ("last success", data["last_success"] or "never"),
        ("last error", f"{err['at']}: {err['message']}" if err else "none"),
    ]
    if data["next_attempt_at"]:
        rows.append(("next attempt", data["next_attempt_at"]))
    for key, value in rows:  # plain lines: long errors must not be cut to fit a table
        typer.echo(f"{key:<13} {value}")
    for op in data["failed_operations"]:
        typer.echo(f"  failed {op['op']} {op['memory_id']}: {op['last_error']}")


@mirror_app.command("sync")
def sync(
    ctx: typer.Context,
    resync: bool = typer.Option(
        False,
        "--resync",
        help="First queue every memory again (e.g. after changing muninn.vault).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Push queued memory changes to MuninnDB now (ignores the backoff)."""
    from engram.mirror.sync import build
    from engram.store import outbox

    st = state(ctx)
    _require_enabled(st.config.muninn)
    if resync:
        render.note(f"queued {outbox.resync(st.store)} memories again")
    syncer = build(st.store, st.config.muninn, render.note)
    with syncer.client:
        report = syncer.run(force=True)
    if json_out:
        render.emit_json(report.to_dict())
    elif report.skipped:
        render.note(report.skipped)
    else:
        typer.echo(describe(report))
        for error in report.errors:
            render.note(f"failed: {error}")
    if report.stopped:
        if not json_out:
            render.note(f"error: {report.stopped}; the changes stay queued")
        raise typer.Exit(1)


@mirror_app.command("retry")
def retry(ctx: typer.Context) -> None:
    """Re-queue failed operations (the next sync tries them again)."""
    from engram.store import outbox

    n = outbox.retry_failed(state(ctx).store)
    typer.echo(f"re-queued {n} failed operations")


@mirror_app.command("pull")
def pull(
    ctx: typer.Context,
    vault: str | None = typer.Option(
        None,
        "--vault",
        help="Only this vault (default: this project's vault and the global vault).",
    ),
    scope: str | None = typer.Option(
        None, "--scope", help="Import into this scope: `global`, `project` or a directory."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Import a vault's memories into the local store (idempotent): a new machine
    bootstraps from the team's MuninnDB."""
    from engram.cli.memories import parse_scope
    from engram.mirror.pull import pull as pull_vault
    from engram.mirror.sync import mirror_lock
    from engram.mirror.vault import make_client, sanitize_vault, vault_for_scope

    st = state(ctx)
    m = st.config.muninn
    _require_enabled(m)
    project, project_vault, global_vault = _vaults(m)
    if vault is None:
        plan = [(project_vault, parse_scope(scope) or project), (global_vault, "global")]
    else:
        name = sanitize_vault(vault)
        default = "global" if name == global_vault else project
        plan = [(name, parse_scope(scope) or default)]
    reports = []
    with make_client(m, render.note) as client, mirror_lock(st.store) as locked:
        if not locked:
            raise EngramError("a mirror sync is running; try again in a moment")
        for name, target in plan:
            own = vault_for_scope(target, m.vault, m.global_vault)
            reports.append(pull_vault(st.store, client, name, target, own))
    if json_out:
        render.emit_json([r.to_dict() for r in reports])
        return
    for r in reports:
        typer.echo(
            f"{r.vault} -> {render.scope_label(r.scope)}: {r.seen} memories, "
            f"{r.added} added, {r.existing} already here, {r.skipped} skipped"
        )
        for line in r.incomplete + r.rejected:
            render.note(f"  {line}")
