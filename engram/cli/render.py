"""Output: rich for people, JSON for scripts. Data goes to stdout, notes to stderr."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

_out: Console | None = None
_err: Console | None = None


def out() -> Console:
    global _out
    if _out is None:
        from rich.console import Console

        _out = Console(highlight=False, soft_wrap=False)
    return _out


def err() -> Console:
    global _err
    if _err is None:
        from rich.console import Console

        _err = Console(stderr=True, highlight=False)
    return _err


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


def note(message: str) -> None:
    err().print(message, markup=False, soft_wrap=True)  # paths must not break mid-line


def short(text: str, width: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def scope_label(scope: str) -> str:
    """Home-relative paths read better in a narrow table."""
    from pathlib import Path

    if scope == "global":
        return scope
    home = str(Path.home())
    label = "~" + scope[len(home) :] if scope.startswith(home + "/") else scope
    if len(label) > 20:  # tables keep the distinctive end; JSON output has the full path
        parts = Path(label).parts
        label = "…/" + "/".join(parts[-2:])
    return label


WRAPPING = {"content", "detail", "value", "summary", "message"}  # free text wraps
FIXED_LIMIT = 40  # a one-line column wider than this is shortened with an ellipsis


def table(columns: list[str], rows: list[list[Any]], *, title: str | None = None) -> None:
    """A plain table that keeps what matters at 80 columns: ids, keys, dates and counts are
    never cut (each one-line column is as wide as its widest cell, up to FIXED_LIMIT);
    only the free-text column wraps, and it takes whatever width is left."""
    from rich import box
    from rich.table import Table

    cells = [["" if v is None else str(v) for v in row] for row in rows]
    t = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for i, name in enumerate(columns):
        if name in WRAPPING:
            t.add_column(name, ratio=1, overflow="fold", min_width=20)
            continue
        width = max([len(name), *(len(r[i]) for r in cells if i < len(r))])
        if width <= FIXED_LIMIT:
            t.add_column(name, no_wrap=True, min_width=width)
        else:
            t.add_column(name, no_wrap=True, overflow="ellipsis", max_width=FIXED_LIMIT)
    for row in cells:
        t.add_row(*row)
    out().print(t)
