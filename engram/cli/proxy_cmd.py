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
from engram.errors import ConfigError, EngramError


def build_proxy(st: Any, upstream: str, *, inject: bool, project_hint: str | None) -> Any:
    """The configured Proxy: journal capture always, recall when inject is on."""
    from engram.sources.proxy import Proxy, ProxySettings, journal_capture

    cfg = st.config
    store = st.store
    store.ensure()
    settings = ProxySettings(
        upstream=upstream,
        recall_budget_ms=cfg.proxy.recall_budget_ms,
        max_body_bytes=int(cfg.proxy.max_body_mb * 2**20),
        inject=inject,
    )
    from engram.cli.watch import capture_policy

    proxy = Proxy(settings, capture=journal_capture(store, project_hint, capture_policy(cfg)))
    if inject:
        try:
            from engram.sources.memory import make_recall

            proxy.recall = make_recall(store, cfg, project_hint, proxy.writer.defer)
        except ImportError as exc:  # recall unavailable: still a working capture proxy
            render.note(f"recall is unavailable ({exc}); capturing only")
    return proxy


def _analyze_after(st: Any, analyzer: str | None) -> None:
    """When the agent exits, distil what it said (never fails the agent's exit code)."""
    from engram.cli.reporter import Reporter

    try:
        hook, _label = analyzer_hook(st, analyzer)
        if hook is not None:
            hook(Reporter())
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


def analyzer_hook(st: Any, name: str | None) -> tuple[Any, str]:
    """(the analyze job or None, a label) for the proxy paths, like the watcher's."""
    from engram.analyzer import runner

    cfg = st.config
    cfg.override("analyzer.backend", name)
    backend, label = runner.choose(cfg.analyzer.backend, cfg.analyzer)
    if backend is None:
        return None, label
    return runner.make_daemon_hook(st.store, backend, cfg.analyzer), label


class BackgroundAnalyzer:
    """`engram proxy` analyzes on the watcher's rule (a full batch, or max-wait passed),
    on its own thread; a failing run is reported and the next one tries again."""

    def __init__(self, st: Any, hook: Any, reporter: Any) -> None:
        self.store = st.store
        self.batch = st.config.mitmproxy.batch
        self.max_wait = st.config.mitmproxy.max_wait
        self.hook = hook
        self.reporter = reporter
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="engram-analyze", daemon=True)

    def _run(self) -> None:
        from engram.analyzer.runner import analysis_due

        while not self.stop.wait(min(5.0, max(0.5, self.max_wait / 4))):
            try:
                if analysis_due(self.store, self.batch, self.max_wait):
                    self.hook(self.reporter)
            except Exception as exc:  # the proxy outlives a failing analyzer run
                self.reporter.error("analyze", f"analyzer run failed: {exc!r}")

    def close(self) -> None:
        self.stop.set()
        self.thread.join(60)


def parse_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    try:
        return (host.strip("[]") or "127.0.0.1"), int(port)
    except ValueError:
        raise ConfigError(f"--listen must be HOST:PORT, got {text!r}") from None


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
        "openai, heuristic or none. [default: auto]",
    ),
) -> None:
    """A transparent reverse proxy for an agent's LLM API: recalls and injects memory,
    journals every exchange, and distils new memories in the background. Point the
    agent's base URL at it."""
    from engram.sources.agents import AGENTS, get_agent, resolve_upstream
    from engram.sources.server import ServerThread

    st = state(ctx)
    cfg = st.config
    cfg.override("proxy.listen", listen)
    cfg.override("proxy.upstream", upstream)
    chosen = get_agent(agent) if agent else AGENTS["claude"]
    route = resolve_upstream(chosen, override=cfg.proxy.upstream)
    host, port = parse_listen(cfg.proxy.listen)
    if host not in ("127.0.0.1", "localhost", "::1"):
        render.note(
            f"warning: listening on {host}: anyone who can reach it can use your "
            "API keys through it"
        )
    proxy_ = build_proxy(
        st, route.origin, inject=cfg.proxy.inject and not no_inject, project_hint=None
    )
    from engram.cli.reporter import Reporter

    hook, label = analyzer_hook(st, analyzer)
    background = BackgroundAnalyzer(st, hook, Reporter()) if hook else None
    server = ServerThread(proxy_.app(), host, port).start()
    if background is not None:
        background.thread.start()
    stop = threading.Event()
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *_: stop.set())
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
        if background is not None:
            background.close()
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
        "openai, heuristic or none. [default: auto]",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan; launch nothing."),
) -> None:
    """Launch a coding agent behind an engram proxy on a random loopback port; every
    argument after the agent's name goes to the agent (use `--` before agent flags
    that engram also has)."""
    from engram.sources.agents import get_agent, resolve_upstream
    from engram.sources.launcher import plan, run_child
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
        p = plan(chosen, route, args, "http://127.0.0.1:<port>", inject=inject, intercept_env=fake)
        for line in p.describe(
            "mitmdump on http://127.0.0.1:<port>" if mitm else "http://127.0.0.1:<port>"
        ):
            typer.echo(line)
        return
    if mitm:
        code = _run_intercepted(st, chosen, route, args, inject)
        _analyze_after(st, analyzer)
        sys.exit(code)
    p = plan(chosen, route, args, "http://127.0.0.1:0", inject=inject)
    proxy_ = build_proxy(st, route.origin, inject=inject, project_hint=p.project)
    with ServerThread(proxy_.app(), "127.0.0.1", 0) as server:
        p = plan(chosen, route, args, server.url, inject=inject)
        render.note(f"engram: {chosen.name} -> {server.url}{route.prefix} -> {route.upstream_base}")
        try:
            code = run_child(p)
        except EngramError:
            raise
    render.note(
        f"engram: {proxy_.stats.captured} exchanges captured, {proxy_.stats.injected} with memory"
    )
    _analyze_after(st, analyzer)
    sys.exit(code)
