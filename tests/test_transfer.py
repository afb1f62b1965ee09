"""engram export / import: round trip, idempotence, validation before writing."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import Cli


def test_round_trip_and_reimport_adds_nothing(cli: Cli, tmp_path: Path, db_path: Path) -> None:
    cli("add", "We deploy with make release", "--kind", "procedure")
    cli("add", 'Ünïcode and "quotes" survive', "--scope", "/srv/app")
    gone = cli("add", "An old fact").stdout.strip()
    cli("forget", gone)
    out = tmp_path / "m.jsonl"
    cli("export", "-o", str(out))
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["content"] for r in lines] == [
        "We deploy with make release",
        'Ünïcode and "quotes" survive',
    ]

    other = Cli(tmp_path / "other.db", cli.runner)
    assert "imported 2 new" in other("import", str(out)).stdout
    mine = {(r["content"], r["kind"], r["scope"], r["created_at"]) for r in cli.json("list")}
    theirs = {(r["content"], r["kind"], r["scope"], r["created_at"]) for r in other.json("list")}
    assert mine == theirs
    assert all(r["source"] == "import" for r in other.json("list"))
    assert other.json("import", str(out)) == {"added": 0, "existing": 2, "skipped": 0}
    assert len(other.json("list", "--all")) == 2
    assert [e["action"] for e in other.json("log")] == ["import", "import"]

    # --all exports forgotten memories too, and import skips them visibly.
    everything = tmp_path / "all.jsonl"
    cli("export", "--all", "-o", str(everything))
    assert other.json("import", str(everything)) == {"added": 0, "existing": 2, "skipped": 1}


def test_import_from_stdin_minimal_records(cli: Cli) -> None:
    data = (
        '{"content": "minimal"}\n\n'
        '{"content": "dated", "created_at": "2024-05-01T10:00:00+02:00"}\n'
    )
    assert cli.json("import", "-", input=data) == {"added": 2, "existing": 0, "skipped": 0}
    rows = {r["content"]: r for r in cli.json("list")}
    assert rows["minimal"]["kind"] == "fact" and rows["minimal"]["scope"] == "global"
    assert rows["dated"]["created_at"] == "2024-05-01T08:00:00.000000Z"


def test_bad_file_changes_nothing(cli: Cli, tmp_path: Path) -> None:
    cases = {
        "notjson.jsonl": ('{"content": "ok"}\nnot json\n', "notjson.jsonl:2: not JSON"),
        "array.jsonl": ('["x"]\n', "expected a JSON object"),
        "empty.jsonl": ('{"content": "ok"}\n{"content": "  "}\n', ":2: memory content is empty"),
        "kind.jsonl": ('{"content": "ok", "kind": "rumour"}\n', "unknown kind"),
        "scope.jsonl": ('{"content": "ok", "scope": "rel/path"}\n', "absolute path"),
        "date.jsonl": ('{"content": "ok", "created_at": "yesterday"}\n', "ISO 8601"),
    }
    for name, (text, message) in cases.items():
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        result = cli.fail("import", str(path))
        assert message in result.stderr, (name, result.stderr)
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes('{"content": "café"}\n'.encode("latin-1"))
    assert "not valid UTF-8" in cli.fail("import", str(bad)).stderr
    assert "cannot read" in cli.fail("import", str(tmp_path / "missing.jsonl")).stderr
    assert cli.json("list", "--all") == []


def test_markdown_export(cli: Cli) -> None:
    cli("add", "Prefer small commits", "--kind", "preference")
    cli("add", "Run make lint before pushing", "--kind", "procedure", "--scope", "/srv/app")
    text = cli("export", "--format", "markdown").stdout
    assert text.startswith("# engram memories")
    assert text.index("## Global") < text.index("## /srv/app")
    assert "### Preferences" in text and "- Prefer small commits `m-" in text
    assert "unknown format" in cli.fail("export", "--format", "xml").stderr
