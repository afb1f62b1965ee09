"""Generate docs/reference/{configuration,cli}.md from the code itself.

The settings' declarations (engram.config_sections) and the commands' own parameters and
docstrings are the source of truth; tests/test_docs.py regenerates both pages and fails
if the committed ones differ, so the reference cannot drift. Regenerate with
`python -m engram.docs_gen`.
"""

from __future__ import annotations

import sys
import typing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "reference"


def _type_label(tp: Any) -> str:
    from engram.config_values import _type_name

    return _type_name(tp).removeprefix("a ").removeprefix("an ")


def _default(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, dict):
        return "see config.example.toml" if value else "{}"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"`{value!r}`" if isinstance(value, str) else f"`{value}`"


def _range(low: float | None, high: float | None) -> str:
    def num(x: float | None) -> str:
        return "" if x is None else f"{x:g}" if isinstance(x, float) else f"{x:,}".replace(",", "_")

    return f"{num(low)} .. {num(high)}"


def configuration_md() -> str:
    from engram.config import SECTIONS, all_settings

    settings = all_settings()
    out = [
        "# Configuration reference",
        "",
        "Generated from `engram/config_sections.py` by `python -m engram.docs_gen`; do not "
        "edit by hand. Precedence: defaults < config file < environment < flags (see "
        "[../configuration.md](../configuration.md)).",
        "",
    ]
    for section in SECTIONS:
        rows = [s for s in settings if s.section == section]
        out += [f"## [{section}]", ""]
        if not rows:
            out += ["(no settings yet)", ""]
            continue
        out += [
            "| key | type | default | range | environment | meaning |",
            "|---|---|---|---|---|---|",
        ]
        for s in rows:
            env = ", ".join(f"`{e}`" for e in s.env)
            meaning = s.help.replace("|", "\\|") + (
                " (secret: masked in `config show`)" if s.secret else ""
            )
            span = _range(s.min, s.max) if s.numeric else ""
            out.append(
                f"| `{s.key}` | {_type_label(s.type)} | {_default(s.default)} | {span} | {env} "
                f"| {meaning} |"
            )
        out.append("")
    return "\n".join(out)


def _walk(command: Any, prefix: str) -> list[tuple[str, Any]]:
    found = [(prefix, command)]
    sub = getattr(command, "commands", None)
    if sub:
        for name in (
            command.list_commands(None) if hasattr(command, "list_commands") else sorted(sub)
        ):
            found += _walk(sub[name], f"{prefix} {name}")
    return found


def _param_row(param: Any) -> str | None:
    if getattr(param, "hidden", False) or param.name in ("help",):
        return None
    if param.param_type_name == "argument":
        name = f"`{(param.metavar or param.name).upper()}`"
    else:
        name = ", ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
    text = (getattr(param, "help", None) or "").replace("|", "\\|").replace("\n", " ")
    default = getattr(param, "default", None)
    if default not in (None, False, (), []) and param.param_type_name != "argument":
        text += f" (default: `{default}`)"
    return f"| {name} | {text} |"


def cli_md() -> str:
    import typer.main

    from engram.cli.app import app

    root = typer.main.get_command(app)
    out = [
        "# Command reference",
        "",
        "Generated from the commands' own help by `python -m engram.docs_gen`; do not edit "
        "by hand. `engram COMMAND --help` prints the same.",
        "",
    ]
    for path, command in _walk(root, "engram"):
        doc = (command.help or "").strip()
        out += [f"## `{path}`", ""]
        if doc:
            out += [" ".join(line.strip() for line in doc.splitlines()), ""]
        rows = [r for r in (_param_row(p) for p in command.params) if r]
        if rows:
            out += ["| argument / option | meaning |", "|---|---|", *rows, ""]
    return "\n".join(out)


PAGES: dict[str, typing.Callable[[], str]] = {
    "configuration.md": configuration_md,
    "cli.md": cli_md,
}


def main() -> int:
    REFERENCE.mkdir(parents=True, exist_ok=True)
    for name, render in PAGES.items():
        (REFERENCE / name).write_text(render() + "\n", encoding="utf-8")
        print(f"wrote docs/reference/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
