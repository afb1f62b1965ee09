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

        # soft_wrap: piped output is never hard-wrapped at 80 columns (grep sees whole lines)
        _out = Console(highlight=False, soft_wrap=True)
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
    """One line for people on stderr, as it is (paths must not break mid-line)."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def line(text: str = "") -> None:
    """One line of plain output on stdout (no markup, no highlighting)."""
    sys.stdout.write(text + "\n")


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


def width() -> int:
    """The terminal's width; 80 when stdout is not a terminal (as rich assumes), or
    COLUMNS when set."""
    import os
    import shutil

    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    return shutil.get_terminal_size((80, 24)).columns if sys.stdout.isatty() else 80


def table(columns: list[str], rows: list[list[Any]], *, title: str | None = None) -> None:
    """A plain table that keeps what matters at 80 columns: ids, keys, dates and counts are
    never cut (each one-line column is as wide as its widest cell, up to FIXED_LIMIT);
    only the free-text column wraps, and it takes whatever width is left.

    Drawn here, not with rich: importing and laying out a rich Table cost ~110 ms of
    `engram list`'s ~300 ms cold start."""
    import textwrap

    cells = [["" if v is None else " ".join(str(v).split("\n")) for v in row] for row in rows]
    gap = "   "
    widths = []
    for i, name in enumerate(columns):
        widest = max([len(name), *(len(r[i]) for r in cells if i < len(r))])
        widths.append(widest if name in WRAPPING else min(widest, FIXED_LIMIT))
    free = [i for i, name in enumerate(columns) if name in WRAPPING]
    if free:
        fixed = sum(w for i, w in enumerate(widths) if i not in free)
        left = width() - fixed - len(gap) * (len(columns) - 1)
        share = max(20, left // len(free))
        for i in free:
            widths[i] = min(widths[i], share)
    # Still too wide: the widest one-line column gives way (ids and dates are narrower).
    excess = sum(widths) + len(gap) * (len(columns) - 1) - width()
    one_line = [j for j in range(len(columns)) if j not in free]
    while excess > 0 and one_line:
        i = max(one_line, key=lambda j: widths[j])
        cut = min(excess, widths[i] - 12)
        if cut <= 0:
            break
        widths[i] -= cut
        excess -= cut

    def fit(i: int, text: str) -> list[str]:
        if i in free:
            return textwrap.wrap(text, widths[i], break_on_hyphens=False) or [""]
        return [text if len(text) <= widths[i] else text[: widths[i] - 1] + "…"]

    lines = []
    if title:
        lines.append(title)
    lines.append(gap.join(n.ljust(w) for n, w in zip(columns, widths, strict=True)).rstrip())
    lines.append("─" * (sum(widths) + len(gap) * (len(columns) - 1)))
    for row in cells:
        parts = [fit(i, row[i] if i < len(row) else "") for i in range(len(columns))]
        for k in range(max(len(p) for p in parts)):
            lines.append(
                gap.join(
                    (p[k] if k < len(p) else "").ljust(w)
                    for p, w in zip(parts, widths, strict=True)
                ).rstrip()
            )
    sys.stdout.write("\n".join(lines) + "\n")
