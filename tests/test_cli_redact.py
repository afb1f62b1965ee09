"""`engram redact` through the CLI runner and a real subprocess."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import Cli, run_engram

# Fake keys shaped like real ones, so the redactor has to catch them.
GH = "ghp_" + "R8aK2mQ9xT4vL7nP1sW6dF3hJ0bY5cE8gU2iZ"
AWS_ID = "AKIA" + "Q3TRW7YHZ2KXN5PL"
LOG = (
    f"token={GH}\nuser ran git log: commit 9fceb02d0ae598e95dc970b74767f19372d61af8\n"
    f"aws_access_key_id = {AWS_ID}\nuuid 123e4567-e89b-12d3-a456-426614174000\n"
)


def test_redact_stdin_and_file(cli: Cli, tmp_path: Path) -> None:
    result = cli("redact", input=LOG)
    assert GH not in result.stdout and AWS_ID not in result.stdout
    assert "[REDACTED:github]" in result.stdout
    assert "9fceb02d0ae598e95dc970b74767f19372d61af8" in result.stdout  # a SHA is not a secret
    assert "123e4567-e89b-12d3-a456-426614174000" in result.stdout
    assert "redacted 2 secret(s)" in result.stderr
    log = tmp_path / "session.log"
    log.write_bytes(LOG.encode() + b"\xff trailing garbage\n")
    assert GH not in cli("redact", str(log)).stdout


def test_redact_json_report_has_no_values(cli: Cli) -> None:
    report = json.loads(cli("redact", "--json", input=LOG).stdout)
    assert report["count"] == 2 and report["by_type"] == {"github": 1, "aws-access-key": 1}
    assert [f["line"] for f in report["findings"]] == [1, 3]
    assert GH not in json.dumps(report) and AWS_ID not in json.dumps(report)
    first = report["findings"][0]
    assert LOG[first["start"] : first["end"]] == GH


def test_redact_subprocess_and_missing_file(tmp_path: Path) -> None:
    done = run_engram("redact", input=LOG.encode())
    assert done.returncode == 0 and GH.encode() not in done.stdout
    missing = run_engram("redact", str(tmp_path / "nope.log"))
    assert missing.returncode == 1 and missing.stderr.startswith(b"error: no such file")
    assert b"nope.log" not in missing.stderr + missing.stdout


def test_text_given_as_argument_is_never_echoed(cli: Cli) -> None:
    """`engram redact "sk-..."`: the argument is no file, and may be a secret; the error
    says how to redact text instead and does not repeat it, however long or odd it is."""
    for arg in (GH, f"export GITHUB_TOKEN={GH}", "x" * 5000 + GH, "a\x00b" + GH):
        result = cli("redact", arg, ok=False)
        assert result.exit_code == 1
        output = result.stdout + result.stderr
        assert GH not in output and "echo '...' | engram redact" in output
    done = run_engram("redact", "y" * 5000 + GH)  # ENAMETOOLONG, in a real process
    assert done.returncode == 1 and GH.encode() not in done.stdout + done.stderr
    assert done.stderr.count(b"\n") == 1  # one line, no traceback


def test_help_documents_piping(cli: Cli) -> None:
    assert "echo '...' | engram redact" in " ".join(cli("redact", "--help").stdout.split())
