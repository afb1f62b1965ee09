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
    file: Path | None = typer.Argument(None, help="A text file; stdin when omitted or `-`."),
    json_out: bool = typer.Option(
        False,
        "--json",
        help="Report what was found (type and position, never the value) instead.",
    ),
) -> None:
    """Print text with secrets replaced by `[REDACTED:<type>]` (API keys, tokens,
    passwords in assignments, private keys, credentials in URLs, ...)."""
    from engram.redact import redact_with_findings

    if file is None or str(file) == "-":
        raw, name = sys.stdin.buffer.read(), "stdin"
    else:
        try:
            raw, name = file.read_bytes(), str(file)
        except OSError as exc:
            raise EngramError(f"cannot read {file}: {exc.strerror}") from None
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
