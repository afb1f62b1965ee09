"""The `engram` Typer app and its global options; command modules add their commands to it.

Every command module (engram/cli/*.py) defines module-level commands with `@app.command()`;
engram/cli/app.py imports them in the order `engram --help` lists them. Commands are thin:
parse flags, call the library, render the result; heavy imports happen inside commands so
that `engram list` starts fast.
"""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer.core import TyperGroup

from engram.cli.context import state
from engram.errors import EngramError


class EngramGroup(TyperGroup):
    def invoke(self, ctx: Any) -> Any:  # a click.Context (vendored by typer >= 0.27)
        try:
            return super().invoke(ctx)
        except EngramError as exc:
            # Typer would draw its own error box; engram's contract is one plain line.
            sys.stderr.write(f"error: {exc}\n")
            raise typer.Exit(exc.exit_code) from None

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)  # in registration order: the help reads as a tour


app = typer.Typer(
    cls=EngramGroup,
    name="engram",
    help="Long-term memory for stateless AI coding agents.\n\n"
    "engram watches your agents' LLM API traffic, distils durable facts from it, keeps "
    "them in a local SQLite store and gives the relevant ones back to the agent.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from engram import __version__

        typer.echo(f"engram {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    version: bool = typer.Option(
        False,
        "--version",
        "-V",
        callback=_version,
        is_eager=True,
        help="Print engram's version and exit.",
    ),
    db: str | None = typer.Option(
        None,
        "--db",
        metavar="PATH",
        help="Database file (env ENGRAM_DB; default ~/.local/share/engram/engram.db).",
    ),
    config: str | None = typer.Option(
        None,
        "--config",
        metavar="PATH",
        help="Config file (env ENGRAM_CONFIG; default ~/.config/engram/config.toml).",
    ),
) -> None:
    st = state(ctx)
    st.db_flag = db
    st.config_flag = config
