"""`engram proxy` and `engram run`."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

import typer

from engram.cli import render
from engram.cli.base import app
from engram.cli.context import state
from engram.errors import ConfigError

RECALL_WARM_WAIT_S = 3.0


def wait_for_recall(proxy: Any, agent: str) -> None:
    """Hold the agent back until recall is warm (model, index, a first query embedded),
    so a one-shot run's only request does not go out bare; at most RECALL_WARM_WAIT_S."""
    recaller = getattr(proxy.recall, "recaller", None)
    if recaller is None:
        return
    if recaller.wait_ready(RECALL_WARM_WAIT_S):
        return
    if recaller.warm_error is not None:
        render.note(f"engram: recall could not start ({recaller.warm_error}); capturing only")
    else:
        render.note(
            f"engram: recall is still loading after {RECALL_WARM_WAIT_S:.0f} s; starting "
            f"{agent} anyway (its first requests may go without memory)"
        )


def _analyze_after(st: Any, analyzer: str | None) -> None:
    """When the agent exits, distil what it said (never fails the agent's exit code)."""
    from engram.cli.reporter import Reporter

    try:
        hook, _label = st.runtime.analyzer(analyzer)
        if hook is not None:
            hook(Reporter(stderr=True))  # the agent's stdout stays the agent's
    except Exception as exc:
        render.note(f"engram: analysis failed ({exc}); `engram analyze` retries it")


def _run_intercepted(st: Any, chosen: Any, route: Any, args: list[str], inject: bool) -> int:
    from engram.sources.launcher import plan, run_child, start_interceptor

    st.store.ensure()
    project = str(Path.cwd().resolve())
    interceptor = start_interceptor(project, st.store.path, inject=inject)
    try:
        p = plan(chosen, route, args, "", inject=inject, intercept_env=interceptor.env())
        render.note(
            f"engram: {chosen.name} -> mitmdump on 127.0.0.1:{interceptor.port} "
            f"(CA {interceptor.ca})"
        )
        return run_child(p)
    finally:
        interceptor.stop()


def parse_listen(text: str, flag: str = "--listen") -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise ConfigError(f"{flag} must be HOST:PORT, got {text!r}") from None
    if not 0 <= number <= 65535:
        raise ConfigError(f"{flag}: port {number} is out of range (0-65535)")
    return (host.strip("[]") or "127.0.0.1"), number


@app.command()
def proxy(
    ctx: typer.Context,
    listen: str | None = typer.Option(
        None, "--listen", help="HOST:PORT. [default: 127.0.0.1:8787]"
    ),
    upstream: str | None = typer.Option(
        None, "--upstream", help="The real API, e.g. https://api.anthropic.com"
    ),
    agent: str | None = typer.Option(
        None, "--agent", help="Take the upstream from this agent's settings."
    ),
    no_inject: bool = typer.Option(False, "--no-inject", help="Capture only."),
    analyzer: str | None = typer.Option(
        None,
        "--analyzer",
        help="Distil memories in the background: auto, anthropic, "
        "claude-code, local, openai, heuristic or none. [default: auto]",
    ),
) -> None:
    """A transparent reverse proxy for an agent's LLM API: recalls and injects memory,
    journals every exchange, and distils new memories in the background. Point the
    agent's base URL at it."""
    from engram.sources.agents import AGENTS, get_agent, resolve_upstream
    from engram.sources.server import ServerThread, check_free

    st = state(ctx)
    cfg = st.config
    cfg.override("proxy.listen", listen)
    cfg.override("proxy.upstream", upstream)
    chosen = get_agent(agent) if agent else AGENTS["claude"]
    route = resolve_upstream(chosen, override=cfg.proxy.upstream)
    host, port = parse_listen(cfg.proxy.listen)
    check_free(host, port)
    from engram.net import is_loopback

    if not is_loopback(host):
        render.note(
            f"warning: listening on {host}: anyone who can reach it can use your "
            "API keys through it"
        )
    rt = st.runtime
    proxy_ = rt.proxy(
        route.origin,
        inject=cfg.proxy.inject and not no_inject,
        project_hint=None,
        on_recall_unavailable=render.note,
    )
    from engram.cli.reporter import Reporter

    # Background work on the scheduler the watcher uses: analysis on the same
    # batch/max-wait rule, and the mirror when it is enabled.
    hook, label = rt.analyzer(analyzer)
    background = rt.scheduler(Reporter(), analyze=hook, sync=rt.mirror_job())
    # Before the server listens: a SIGTERM that arrives as soon as a client sees it
    # listening still stops it cleanly (the writer drained, the spool removed).
    stop = threading.Event()
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *_: stop.set())
    server = ServerThread(proxy_.app(), host, port).start()
    background.start()
    render.note(
        f"engram proxy on {server.url}{route.prefix} -> {route.upstream_base} "
        f"({'capture only' if not proxy_.recall else 'recall + inject'}; "
        f"analyzer: {label})"
    )
    try:
        while not stop.wait(1.0):
            pass
    finally:
        server.stop()
        background.stop()
    render.note(
        f"stopped: {proxy_.stats.requests} requests, {proxy_.stats.captured} "
        f"captured, {proxy_.stats.injected} with memory"
    )


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(
    ctx: typer.Context,
    agent: str = typer.Argument(..., help="claude, codex, opencode, aider, grok, qwen, gemini."),
    upstream: str | None = typer.Option(None, "--upstream", help="The real API base URL."),
    no_inject: bool = typer.Option(False, "--no-inject", help="Capture only."),
    mitm: bool = typer.Option(
        False,
        "--mitm",
        help="For agents that ignore base-URL variables: route the agent "
        "through an engram-run mitmproxy (HTTPS_PROXY + its CA) instead.",
    ),
    analyzer: str | None = typer.Option(
        None,
        "--analyzer",
        help="Distil memories when the agent exits: auto, anthropic, "
        "claude-code, local, openai, heuristic or none. [default: auto]",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan; launch nothing."),
) -> None:
    """Launch a coding agent behind an engram proxy on a random loopback port; every
    argument after the agent's name goes to the agent (use `--` before agent flags
    that engram also has)."""
    from engram.sources.agents import get_agent, resolve_upstream
    from engram.sources.launcher import plan, preflight, require_binary, run_child
    from engram.sources.server import ServerThread

    st = state(ctx)
    chosen = get_agent(agent)
    route = resolve_upstream(chosen, override=upstream)
    args = list(ctx.args)
    if args[:1] == ["--"]:
        args = args[1:]
    inject = st.config.proxy.inject and not no_inject
    if dry_run:
        fake = None
        if mitm:
            from engram.sources.launcher import CA_VARS, PROXY_VARS

            fake = {
                **dict.fromkeys(PROXY_VARS, "http://127.0.0.1:<port>"),
                **dict.fromkeys(CA_VARS, "<engram data dir>/mitmproxy/mitmproxy-ca-cert.pem"),
                "NODE_USE_ENV_PROXY": "1",
            }
        import shutil

        from engram.sources.agents import installed_version

        p = plan(chosen, route, args, "http://127.0.0.1:<port>", inject=inject, intercept_env=fake)
        found = shutil.which(p.command[0])
        version = installed_version(found) if found else None
        for line in p.describe(
            "mitmdump on http://127.0.0.1:<port>" if mitm else "http://127.0.0.1:<port>",
            version,
        ):
            typer.echo(line)
        for line in preflight(p):
            typer.echo(f"warning:   {line}")
        return
    p = plan(chosen, route, args, "http://127.0.0.1:0", inject=inject)
    require_binary(p)  # before any banner: a missing agent is the whole story
    if mitm:
        code = _run_intercepted(st, chosen, route, args, inject)
        _analyze_after(st, analyzer)
        sys.exit(code)
    warnings = preflight(p)
    for line in warnings:
        render.note(f"engram: {line}")
    proxy_ = st.runtime.proxy(
        route.origin, inject=inject, project_hint=p.project, on_recall_unavailable=render.note
    )
    with ServerThread(proxy_.app(), "127.0.0.1", 0) as server:
        p = plan(chosen, route, args, server.url, inject=inject)
        render.note(f"engram: {chosen.name} -> {server.url}{route.prefix} -> {route.upstream_base}")
        wait_for_recall(proxy_, chosen.name)
        code = run_child(p)
    from engram.recall.audit import summarize

    stats = proxy_.stats
    summary = f"engram: {summarize(stats.recall_outcomes)}"
    if stats.websockets_uncaptured:
        summary += f", {stats.websockets_uncaptured} WebSocket sessions not captured"
    render.note(summary)
    if code != 0 and warnings:
        render.note(f"engram: {chosen.name} exited {code}; likely why: {warnings[0]}")
    _analyze_after(st, analyzer)
    sys.exit(code)
