"""Privacy commands: `engram redact` (scrub a log before sharing it), `engram pause`
and `engram resume` (stop and restart capture and analysis everywhere)."""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer

from engram.cli import render
from engram.cli.base import app
from engram.cli.context import state
from engram.errors import ConfigError, EngramError
from engram.store import schema


@app.command()
def redact(
    file: str | None = typer.Argument(
        None,
        metavar="[FILE]",
        help="A text file; stdin when omitted or `-`. To redact text, pipe it: "
        "`echo '...' | engram redact`.",
    ),
    json_out: bool = typer.Option(
        False,
        "--json",
        help="Report what was found (type and position, never the value) instead.",
    ),
) -> None:
    """Print a file or stdin with secrets replaced by `[REDACTED:<type>]`.

    API keys and tokens of ~80 services, passwords and secrets in assignments (.env,
    YAML, JSON, code, netrc, command lines), private keys, credentials in URLs and
    headers, Kubernetes Secret data. The argument is a path, never the text itself: pipe
    text through stdin, `echo '...' | engram redact`. A path that does not exist is an
    error that does not repeat the argument (it may be a secret)."""
    from engram.redact import redact_with_findings

    if file is None or file == "-":
        raw, name = sys.stdin.buffer.read(), "stdin"
    else:
        raw, name = _read(file), file
    # Undecodable bytes must not stop a user scrubbing a log: keep them as U+FFFD.
    text = raw.decode("utf-8", errors="replace")
    clean, findings = redact_with_findings(text)
    if json_out:
        counts: dict[str, int] = {}
        for f in findings:
            counts[f.type] = counts.get(f.type, 0) + 1
        render.emit_json(
            {
                "source": name,
                "count": len(findings),
                "by_type": counts,
                "findings": [
                    {
                        "type": f.type,
                        "start": f.start,
                        "end": f.end,
                        "line": text.count("\n", 0, f.start) + 1,
                    }
                    for f in findings
                ],
            }
        )
        return
    sys.stdout.write(clean)
    sys.stdout.flush()
    if findings:
        render.note(f"redacted {len(findings)} secret(s)")


def _read(file: str) -> bytes:
    """The file's bytes. The argument is never repeated in an error: people try
    `engram redact "$KEY"`. (A plain `str` argument: click's Path type would stat it first,
    and a NUL byte or a name too long would surface it in a traceback.)"""
    path = Path(file)
    try:
        exists = path.exists()
    except (OSError, ValueError):  # a name too long, a NUL byte: no file either
        exists = False
    if not exists:
        raise EngramError(
            "no such file (the argument is not shown: it may be a secret)",
            hint="to redact text, pipe it: echo '...' | engram redact",
        )
    try:
        return path.read_bytes()
    except OSError as exc:
        raise EngramError(f"cannot read the file: {exc.strerror}") from None


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])", re.IGNORECASE)
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_PAUSE = timedelta(days=366)


def parse_duration(text: str) -> timedelta:
    """`30m`, `2h`, `1h30m`, `90s`, `1.5h`, `2d`, `1w`: a unit on every number."""
    compact = text.strip().replace(" ", "")
    parts = list(_DURATION.finditer(compact))
    if not compact or not parts or "".join(p.group(0) for p in parts) != compact:
        raise ConfigError(
            f"--for must be a duration such as 30m, 2h, 1h30m or 1d, got {text!r}",
        )
    seconds = sum(float(p.group(1)) * _UNIT[p.group(2).lower()] for p in parts)
    if seconds <= 0 or seconds > MAX_PAUSE.total_seconds():
        raise ConfigError(f"--for must be between 1s and 366d, got {text!r}")
    return timedelta(seconds=seconds)


def describe_pause(period: dict[str, str | None]) -> str:
    """ "until 15:42 (in 29m)" or "until `engram resume`", in local time."""
    until = period.get("until")
    if until is None:
        return "until `engram resume`"
    end = schema.parse_iso(until)
    left = end - datetime.now(UTC)
    local = end.astimezone()
    when = local.strftime("%H:%M" if left < timedelta(hours=20) else "%Y-%m-%d %H:%M")
    return f"until {when} (in {_span(left)})"


def _span(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"


@app.command()
def pause(
    ctx: typer.Context,
    for_: str | None = typer.Option(
        None,
        "--for",
        metavar="DURATION",
        help="End the pause by itself after DURATION (30m, 2h, 1h30m, 1d).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the pause as JSON."),
) -> None:
    """Stop capture and analysis everywhere until `engram resume` (or for DURATION).

    Every source (the proxy, `engram run`, the mitmweb watcher, the addon, flow
    files, transcripts) journals nothing from now on, nor later anything that
    happened while paused; the analyzer job and `engram analyze` do nothing. The
    proxy keeps forwarding and still injects the memories you already have, but
    records nothing about it. Pausing again replaces the end of the pause."""
    from engram.store import pause as paused

    duration = parse_duration(for_) if for_ is not None else None
    with state(ctx).store.write() as session:
        period = paused.pause(session, duration)
    data = period.to_dict()
    if json_out:
        render.emit_json({"paused": True, **data})
        return
    typer.echo(f"engram is paused {describe_pause(data)}: nothing is captured or analysed")


@app.command()
def resume(
    ctx: typer.Context,
    json_out: bool = typer.Option(False, "--json", help="Print the ended pause as JSON."),
) -> None:
    """End a pause: capture and analysis start again (what was said while paused is
    never recorded)."""
    from engram.store import pause as paused

    with state(ctx).store.write() as session:
        ended = paused.resume(session)
    if json_out:
        render.emit_json({"paused": False, "ended": ended.to_dict() if ended else None})
        return
    if ended is None:
        typer.echo("engram was not paused")
        return
    started = schema.parse_iso(ended.start)
    typer.echo(
        f"engram resumed after {_span(datetime.now(UTC) - started)}: capture and analysis are on"
    )
