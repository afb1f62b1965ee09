"""`engram redact`: scrub secrets from a log before sharing it."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from engram.cli import render
from engram.cli.base import app
from engram.errors import EngramError


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
