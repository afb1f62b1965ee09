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


WRAPPING = {"content", "detail", "value"}  # every other column stays on one line


def table(columns: list[str], rows: list[list[Any]], *, title: str | None = None) -> None:
    """A plain table; only the free-text column wraps, ids and dates stay on one line."""
    from rich import box
    from rich.table import Table

    t = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name in columns:
        if name in WRAPPING:
            t.add_column(name, ratio=1, overflow="fold", min_width=20)
        else:  # shrinks with an ellipsis on a narrow terminal rather than starving the text
            t.add_column(name, no_wrap=True, overflow="ellipsis", max_width=16)
    for row in rows:
        t.add_row(*["" if v is None else str(v) for v in row])
    out().print(t)
