"""`engram service install|status|logs|uninstall`: engram's daemons as per-user services.

Thin on purpose: the planning, rendering and file work live in `engram.service`; this
module gathers what only the CLI knows (flags, the installing shell's environment, the
watcher's own option parser) and reports what was and was not done.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from engram.cli.base import app
from engram.cli.context import State, state
from engram.errors import ConfigError, EngramError

if TYPE_CHECKING:
    from engram.service import Layout
    from engram.service_ops import Runner

PLATFORM_HELP = "linux or macos (default: this machine's); renders that platform's files."


service_app = typer.Typer(
    help="Run engram's watcher (and optionally mitmweb, `engram proxy`, the agents' "
    "transcripts) as a per-user service: systemd user units on Linux, launchd agents on macOS.",
    no_args_is_help=True,
)
app.add_typer(service_app, name="service")


@service_app.command("install")
def install(
    ctx: typer.Context,
    mitmweb: bool = typer.Option(
        False,
        "--mitmweb",
        help="Also run mitmweb with engram's addon, sharing a generated password with the watcher.",
    ),
    proxy: bool = typer.Option(False, "--proxy", help="Also run `engram proxy`."),
    proxy_listen: str = typer.Option(
        "127.0.0.1:8787",
        "--proxy-listen",
        metavar="HOST:PORT",
        help="Where `engram proxy` listens.",
    ),
    proxy_upstream: str = typer.Option(
        "https://api.anthropic.com",
        "--proxy-upstream",
        metavar="URL",
        help="Where `engram proxy` forwards.",
    ),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Print the files (secrets masked) and commands; change nothing.",
    ),
    transcripts: str | None = typer.Option(
        None,
        "--transcripts",
        metavar="AGENTS",
        help="Follow these agents' transcripts (claude,codex,gemini,qwen or all): on their "
        "own, or beside mitmweb with --mitmweb or watcher arguments.",
    ),
    platform: str | None = typer.Option(None, "--platform", help=PLATFORM_HELP),
    watcher_args: list[str] | None = typer.Argument(
        None, metavar="-- WATCHER_ARGS", help="Passed to `engram mitmproxy`."
    ),
) -> None:
    """Write and enable the service units; reinstalling replaces them (same password)."""
    from engram import service, service_ops

    plat = service.resolve_platform(platform)
    args = tuple(watcher_args or ())
    _check_watcher_args(ctx, args)
    st = state(ctx)
    layout = service.layout_for(plat)
    from engram.cli.ingest_cmd import parse_agents

    jobs = service.make_jobs(
        mitmweb=mitmweb,
        proxy=proxy,
        watcher_args=args,
        proxy_listen=proxy_listen,
        proxy_upstream=proxy_upstream,
        transcripts=tuple(parse_agents([transcripts] if transcripts else [])),
    )
    plan = service.plan_install(layout, jobs, captured_env(st), token=st.config.mitmproxy.token)
    for note in plan.notes:
        typer.echo(f"note: {note}")
    if dry_run:
        for spec in plan.files:
            typer.echo(f"--- {spec.path} (mode {spec.mode:04o})\n{spec.shown.rstrip()}")
        for path in plan.remove:
            typer.echo(f"--- would remove {path} (installed before, not now)")
        _echo_commands("--- would run:", plan.stop + plan.start)
        return
    runner = service_ops.Runner(plat)
    tool = _manager(plat)
    why = runner.unavailable(tool)
    failures = _run_all(runner, plan.stop) if why is None else []
    service_ops.apply_install(plan)
    for spec in plan.files:
        typer.echo(f"wrote {spec.path}")
    for path in plan.remove:
        typer.echo(f"removed {path}")
    if why is not None:
        typer.echo(
            f"{tool} cannot be used here ({why}); the files are written. Where it "
            "can, start the service with:"
        )
        _echo_commands("", plan.stop + plan.start)
        return
    failures += _run_all(runner, plan.start)
    if failures:
        raise typer.Exit(1)
    typer.echo(f"started: {', '.join(service.units(layout, [j.name for j in jobs]))}")


@service_app.command("status")
def status(platform: str | None = typer.Option(None, "--platform", help=PLATFORM_HELP)) -> None:
    """What is installed, then the service manager's view of it (its exit status)."""
    from engram import service

    layout, names = _installed(platform)
    typer.echo(f"installed ({layout.platform}): {', '.join(service.units(layout, names))}")
    for path in (*(layout.unit_file(n) for n in names), layout.env_file):
        typer.echo(f"  {path}{'' if path.exists() else '  (missing!)'}")
    _passthrough(layout.platform, _manager(layout.platform), service.status_commands(layout, names))


@service_app.command("logs")
def logs(
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
    lines: int = typer.Option(50, "--lines", "-n", min=0, help="Lines of history."),
    platform: str | None = typer.Option(None, "--platform", help=PLATFORM_HELP),
) -> None:
    """The services' logs: the user journal on Linux, ~/Library/Logs/engram on macOS."""
    from engram import service

    layout, names = _installed(platform)
    cmd = service.log_command(layout, names, lines=lines, follow=follow)
    _passthrough(layout.platform, cmd[0], [cmd])


@service_app.command("uninstall")
def uninstall(
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print what would be stopped and removed; change nothing."
    ),
    platform: str | None = typer.Option(None, "--platform", help=PLATFORM_HELP),
) -> None:
    """Stop the services and remove exactly the files install wrote."""
    from engram import service, service_ops

    layout, _names = _installed(platform)
    plan = service.plan_uninstall(layout)
    if dry_run:
        _echo_commands("--- would run:", plan.stop + plan.start)
        for path in plan.remove:
            typer.echo(f"--- would remove {path}")
        typer.echo(f"--- would remove {layout.manifest}")
        return
    runner = service_ops.Runner(layout.platform)
    tool = _manager(layout.platform)
    why = runner.unavailable(tool)
    failures = _run_all(runner, plan.stop) if why is None else []
    for path in service_ops.apply_uninstall(plan):
        typer.echo(f"removed {path}")
    typer.echo(f"removed {layout.manifest}")
    if why is not None:
        typer.echo(f"{tool} cannot be used here ({why}); nothing was stopped")
        return
    failures += _run_all(runner, plan.start)
    if failures:
        raise typer.Exit(1)


def captured_env(st: State) -> dict[str, str]:
    """What the service would not find by itself: engram settings taken from the installing
    shell's environment, and a database or config file chosen by flag or variable."""
    cfg = st.config
    env = {}
    for name, source in cfg.sources.items():
        if source.startswith("env:"):
            var = source.removeprefix("env:")
            value = os.environ[var]
            env[var] = str(Path(value).expanduser().absolute()) if name == "store.path" else value
    if st.db_flag:
        env["ENGRAM_DB"] = str(Path(st.db_flag).expanduser().absolute())
    config_file = st.config_flag or os.environ.get("ENGRAM_CONFIG")
    if config_file:
        env["ENGRAM_CONFIG"] = str(Path(config_file).expanduser().absolute())
    return env


def _root_command(ctx: typer.Context, name: str) -> Any:
    """A top-level command's parser (typer may vendor its own click: no isinstance)."""
    root = ctx.find_root()
    get = getattr(root.command, "get_command", None)
    return get(root, name) if callable(get) else None


def _check_watcher_args(ctx: typer.Context, args: tuple[str, ...]) -> None:
    """Parse the pass-through arguments now, with the watcher's own parser: a typo should
    fail here, not in a service restarting in the background."""
    cmd = _root_command(ctx, "mitmproxy")
    if cmd is None or not args:
        return
    if {"--help", "-h"} & set(args):
        raise ConfigError("watcher arguments: --help is not for a service")
    try:
        with cmd.make_context("engram mitmproxy", list(args)) as sub:
            params: dict[str, Any] = sub.params
    except typer.Exit:
        raise ConfigError("watcher arguments: --help is not for a service") from None
    except Exception as exc:  # click's usage errors, whichever click typer uses
        message = getattr(exc, "format_message", None)
        if not callable(message):
            raise
        raise ConfigError(f"watcher arguments: {message()}") from None
    if params.get("token"):
        raise ConfigError(
            "watcher arguments: --token would put the secret in the unit file",
            hint="export ENGRAM_MITMWEB_TOKEN before installing: it goes to the 0600 env file",
        )
    if params.get("once"):
        raise ConfigError("watcher arguments: --once exits after one poll; a service runs on")


def _manager(platform: str) -> str:
    return "systemctl" if platform == "linux" else "launchctl"


def _installed(requested: str | None) -> tuple[Layout, list[str]]:
    """The layout and job names from the manifest (its place is the same on both platforms)."""
    from engram import service

    probe = service.layout_for(service.resolve_platform(requested) if requested else "linux")
    manifest = service.read_manifest(probe)
    if manifest is None:
        raise EngramError(
            "engram's service is not installed",
            hint=f"no {probe.manifest}; see `engram service install`",
        )
    layout = service.layout_for(str(manifest.get("platform", probe.platform)))
    return layout, [str(n) for n in manifest.get("jobs", [])]


def _echo_commands(title: str, commands: list[list[str]]) -> None:
    if title:
        typer.echo(title)
    for cmd in commands:
        typer.echo(f"  {shlex.join(cmd)}")


def _run_all(runner: Runner, commands: list[list[str]]) -> list[str]:
    """Run each command; report failures (a launchd job that was not loaded is no failure)."""
    failures = []
    for cmd in commands:
        code, output = runner.run(cmd)
        if code != 0 and cmd[:2] != ["launchctl", "bootout"]:
            typer.echo(f"error: `{shlex.join(cmd)}` failed ({code}): {output}", err=True)
            failures.append(shlex.join(cmd))
    return failures


def _passthrough(platform: str, tool: str, commands: list[list[str]]) -> None:
    from engram import service_ops

    runner = service_ops.Runner(platform)
    why = runner.unavailable(tool)
    if why is not None:
        typer.echo(f"{tool} cannot be used here ({why}); where it can, run:")
        _echo_commands("", commands)
        return
    worst = 0
    for cmd in commands:
        worst = max(worst, runner.passthrough(cmd))
    if worst:
        raise typer.Exit(worst)
