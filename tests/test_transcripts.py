"""Agent transcripts as a source, on sessions recorded from the real CLIs
(tests/fixtures/transcripts, `scripts/record_transcripts.py`): what is journaled, once,
however and however often a file is read."""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path

import pytest

from engram import journaling
from engram.sources import transcripts as tx
from engram.sources.transcript_claude import ClaudeParser
from engram.sources.transcript_formats import load_record
from engram.store.db import Store
from tests.conftest import Cli
from tests.transcript_helpers import (
    CLAUDE_SESSION,
    CLAUDE_SUBAGENT,
    FIXTURES,
    PROJECT,
    claude_file,
    claude_request,
    claude_response,
    install,
    journal_shape,
    rows,
    turns_of,
)

LATER = 1e9  # a settle time no test reaches: the last exchange of a file stays open
NO_POLICY = journaling.CapturePolicy()  # nothing ignored (the pause is in the database)


# -- recognising files --------------------------------------------------------------


@pytest.mark.parametrize("agent", ["claude", "codex", "gemini", "qwen"])
def test_each_agents_files_are_recognised(agent: str) -> None:
    files = sorted((FIXTURES / agent).rglob("*.jsonl"))
    assert files
    assert {tx.detect(f) for f in files} == {agent}


def test_a_flow_file_is_recognised(tmp_path: Path) -> None:
    from mitmproxy import io as mio
    from mitmproxy.test import tflow

    path = tmp_path / "dump"  # no suffix: recognised by content
    with path.open("wb") as fh:
        mio.FlowWriter(fh).add(tflow.tflow(resp=True))
    assert tx.detect(path) == tx.FLOW


def test_a_file_engram_cannot_read_is_one_error_line_and_exit_1(
    cli: Cli, tmp_path: Path, db_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("remember the milk\n")
    good = install("claude", tmp_path / "home")[0]
    result = cli.fail("ingest", str(good), str(notes))
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {notes}: not a format engram reads")
    assert "mitmproxy flow file" in lines[0] and "Claude Code" in lines[0]
    assert "partial record" not in result.stderr
    assert not db_path.exists() or rows(db_path) == []  # nothing half-done


def test_ingest_says_what_it_found(cli: Cli, tmp_path: Path) -> None:
    root = tmp_path / "sessions"
    install("claude", root)
    install("codex", root)
    (root / "README.md").write_text("not a session")
    result = cli("ingest", str(root), "--no-analyze")
    assert "2 Claude Code transcripts, 1 Codex transcript" in result.stderr
    assert "1 other files" in result.stderr


# -- what is journaled --------------------------------------------------------------


def test_claude_session_turns_project_and_subagent(cli: Cli, db_path: Path) -> None:
    home = Path.home()
    install("claude", home)
    totals = cli.json("ingest", "--agent", "claude", "--no-analyze")
    assert (totals["files"], totals["exchanges"], totals["duplicates"]) == (2, 8, 0)
    journaled = rows(db_path)
    assert {r["project"] for r in journaled} == {PROJECT}
    assert {r["source"] for r in journaled} == {"transcript"}
    main = turns_of(db_path, CLAUDE_SESSION)
    users = [text for role, text in main if role == "user" and text]
    # The compaction summary, the /compact command and its output, the task notice:
    # harness, not the user's words.
    assert users == [
        "We use pytest. Remember that.",
        "please read notes.txt",
        "now delegate to a subagent",
        "we deploy with ansible",
    ]
    calls = [c["name"] for r in rows(db_path) for t in r["turns"] for c in t.get("tool_calls", [])]
    assert calls == ["Read", "Agent"]
    results = [t for r in rows(db_path) for t in r["turns"] if t.get("tool_results")]
    assert "the build uses make" in results[0]["tool_results"][0]["content"]
    # The subagent's sidechain is its own conversation.
    assert turns_of(db_path, CLAUDE_SUBAGENT) == [
        ("user", "SUBAGENT: summarise notes.txt"),
        ("assistant", "subagent: notes.txt says the build uses make"),
    ]
    # One assistant turn per API message, though Claude Code writes a line per block.
    lines = [json.loads(x) for x in claude_file(home).read_text().splitlines()]
    ids = {x["message"]["id"] for x in lines if x["type"] == "assistant"}
    assert len([t for t in main if t[0] == "assistant"]) == len(ids)


@pytest.mark.parametrize(
    ("agent", "users"),
    [
        ("codex", ["We use pytest. Remember that.", "we deploy with ansible"]),
        ("gemini", ["We use pytest. Remember that.", "please read notes.txt"]),
        ("qwen", ["We use pytest. Remember that.", "please read notes.txt"]),
    ],
)
def test_other_agents(cli: Cli, db_path: Path, agent: str, users: list[str]) -> None:
    install(agent, Path.home())
    totals = cli.json("ingest", "--agent", agent, "--no-analyze")
    assert totals["files"] == 1 and totals["exchanges"] >= 2
    journaled = rows(db_path)
    assert {r["project"] for r in journaled} == {PROJECT}
    assert len({r["conversation"] for r in journaled}) == 1
    said = [text for role, text in turns_of(db_path) if role == "user" and text]
    assert said == users  # the harness's opening context is left out
    assert all(r["status"] == "pending" for r in journaled)


def test_reading_again_adds_nothing(cli: Cli, db_path: Path) -> None:
    install("claude", Path.home())
    first = cli.json("ingest", "--agent", "claude", "--no-analyze")
    shape = journal_shape(db_path)
    again = cli.json("ingest", "--agent", "claude", "--no-analyze")
    assert again["exchanges"] == 0 and again["lines"] == 0
    # A copy elsewhere (a backup, a moved home) is recognised by content too.
    copy = Path.home() / "backup"
    shutil.copytree(Path.home() / ".claude", copy)
    third = cli.json("ingest", str(copy), "--no-analyze")
    assert third["exchanges"] == 0 and third["duplicates"] == first["exchanges"]
    assert journal_shape(db_path) == shape


def test_engram_analyzer_sessions_are_skipped(tmp_path: Path, db_path: Path) -> None:
    from engram.paths import analyzer_workdir

    workdir = str(analyzer_workdir())
    text = (FIXTURES / "claude" / "-home-dev-shop" / f"{CLAUDE_SESSION}.jsonl").read_text()
    path = tmp_path / "analyzer.jsonl"
    path.write_text(text.replace(PROJECT, workdir))
    store = Store(db_path)
    stats = tx.TranscriptReader(store, NO_POLICY).read(path, "claude", final=True)
    assert stats.skipped_files == 1 and stats.pieces == 0
    assert rows(db_path) == []


def test_engram_block_and_secrets_never_reach_the_journal(tmp_path: Path, db_path: Path) -> None:
    from engram.wire.block import wrap_block

    key = "sk-ant-api03-Pq5wE8rT2yU6iO0pA3sD7fG1hJ4kL8zX2cV5bN9mQ3wE6rT0yU4iO7pA1sD5fG8hJ2kL6zX"
    lines = [
        _claude_line("user", "u1", f"{wrap_block('- use pnpm')}\nmy key is {key}"),
        _claude_line("assistant", "a1", "noted", message_id="m1"),
    ]
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(lines) + "\n")
    tx.TranscriptReader(Store(db_path), NO_POLICY).read(path, "claude", final=True)
    stored = json.dumps(rows(db_path))
    assert key not in stored and "[REDACTED:anthropic]" in stored
    assert "engram-memory" not in stored and "use pnpm" not in stored


def _claude_line(kind: str, uuid: str, text: str, *, message_id: str | None = None) -> str:
    message: dict[str, object] = {"role": kind, "content": text}
    if message_id:
        message = {"id": message_id, "role": kind, "model": "claude-x", "content": [
            {"type": "text", "text": text}
        ]}  # fmt: skip
    return json.dumps(
        {
            "type": kind,
            "uuid": uuid,
            "sessionId": "s-1",
            "cwd": PROJECT,
            "isSidechain": False,
            "timestamp": "2026-12-06T10:00:00.000Z",
            "message": message,
        }
    )


# -- reading a file as it grows -----------------------------------------------------


def _one_shot(tmp_path: Path, source: Path, name: str) -> list[tuple[object, ...]]:
    db = tmp_path / f"{name}.db"
    tx.TranscriptReader(Store(db), NO_POLICY).read(source, "claude", final=True)
    return journal_shape(db)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_file_read_while_it_grows_journals_what_one_read_does(tmp_path: Path, seed: int) -> None:
    source = claude_file(FIXTURES / "claude")
    expected = _one_shot(tmp_path, source, "whole")
    data = source.read_bytes()
    cuts = sorted(random.Random(seed).sample(range(1, len(data)), 12))  # mid-line too
    db = tmp_path / "grown.db"
    growing = tmp_path / "grown" / source.name
    growing.parent.mkdir()
    reader = tx.TranscriptReader(Store(db), NO_POLICY, settle=LATER)
    for cut in [*cuts, len(data)]:
        growing.write_bytes(data[:cut])
        reader.read(growing, "claude")
        if seed == 3 and cut == cuts[6]:  # a restart halfway: a fresh process
            reader = tx.TranscriptReader(Store(db), NO_POLICY, settle=LATER)
    reader.read(growing, "claude", final=True)
    got = journal_shape(db)
    assert [g[1:] for g in got] == [e[1:] for e in expected]
    assert len(got) == len(expected)


def test_a_partial_last_line_waits_and_bad_lines_are_skipped(tmp_path: Path, db_path: Path) -> None:
    source = claude_file(FIXTURES / "claude")
    data = source.read_bytes()
    path = tmp_path / source.name
    path.write_bytes(data[:-25])  # the last line is still being written
    reader = tx.TranscriptReader(Store(db_path), NO_POLICY, settle=LATER)
    assert reader.read(path, "claude").bad_lines == 0
    path.write_bytes(data + b'{"type":"user", not json\n')
    stats = reader.read(path, "claude", final=True)
    assert stats.bad_lines == 1
    assert journal_shape(db_path)[-1][1:] == _one_shot(tmp_path, source, "x")[-1][1:]


def test_replaced_and_rewritten_files_are_read_again_without_duplicates(
    tmp_path: Path, db_path: Path
) -> None:
    source = claude_file(FIXTURES / "claude")
    lines = source.read_bytes().splitlines(keepends=True)
    cut = [i for i, line in enumerate(lines) if b'"type":"assistant"' in line][3] + 1
    path = tmp_path / source.name
    path.write_bytes(b"".join(lines[:cut]))
    store = Store(db_path)
    tx.TranscriptReader(store, NO_POLICY).read(path, "claude", final=True)
    before = len(rows(db_path))
    # Replaced by a new file (another inode) holding the whole session.
    other = tmp_path / "new.jsonl"
    other.write_bytes(b"".join(lines))
    os.replace(other, path)
    tx.TranscriptReader(store, NO_POLICY).read(path, "claude", final=True)
    after = len(rows(db_path))
    # Rewritten in place, shorter than what was read (e.g. a tool trimmed it).
    path.write_bytes(b"".join(lines[:cut]))
    tx.TranscriptReader(store, NO_POLICY).read(path, "claude", final=True)
    assert before < after == len(rows(db_path))
    # Every turn once, as if the whole file had been read in one go.
    whole = tmp_path / "whole.db"
    tx.TranscriptReader(Store(whole), NO_POLICY).read(source, "claude", final=True)
    assert turns_of(db_path) == turns_of(whole)


def test_a_failed_commit_loses_and_repeats_nothing(
    tmp_path: Path, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = claude_file(FIXTURES / "claude")
    expected = _one_shot(tmp_path, source, "whole")
    store = Store(db_path)
    reader = tx.TranscriptReader(store, NO_POLICY, settle=LATER)
    real = journaling._record_new_piece
    calls = {"n": 0}

    def flaky(session, piece, prior, policy):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError("disk full")
        return real(session, piece, prior, policy)

    monkeypatch.setattr(journaling, "_record_new_piece", flaky)
    with pytest.raises(OSError):
        reader.read(source, "claude", final=True)
    monkeypatch.setattr(journaling, "_record_new_piece", real)
    reader.read(source, "claude", final=True)
    assert [g[1:] for g in journal_shape(db_path)] == [e[1:] for e in expected]


# -- one conversation, two doors ----------------------------------------------------


def _pieces(path: Path) -> list[tuple[str, list]]:
    parser = ClaudeParser(path)
    out, end = [], 0
    for line in path.read_bytes().splitlines(keepends=True):
        end += len(line)
        out += [(d.conversation, d.turns) for d in parser.feed(load_record(line), line, end)]
    out += [(d.conversation, d.turns) for d in parser.flush()]
    return out


def _capture_through_proxy(store: Store, path: Path) -> int:
    """Journal the session the way the proxy sees it: one request per assistant message,
    carrying the whole history of its conversation, plus the reply."""
    history: dict[str, list] = {}
    count = 0
    with store.write() as session:
        for conversation, turns in _pieces(path):
            sid, _, agent = conversation.partition("/agent-")
            past = history.setdefault(conversation, [])
            *asked, reply = turns
            past.extend(asked)
            request = claude_request(sid, list(past), agent or None)
            capture = journaling.Capture(
                source="proxy",
                source_key=f"proxy:{path.name}:{count}",
                request=request,
                response=claude_response(reply),
            )
            journaling.record(session, capture, NO_POLICY)
            past.append(reply)
            count += 1
    return count


def test_a_turn_seen_by_the_proxy_is_not_journaled_again_from_the_transcript(
    tmp_path: Path, db_path: Path
) -> None:
    home = tmp_path / "home"
    install("claude", home)
    store = Store(db_path)
    sent = _capture_through_proxy(store, claude_file(home))
    sent += _capture_through_proxy(store, next(home.rglob("agent-*.jsonl")))
    proxy_turns = sum(r["new_turns"] for r in rows(db_path, "proxy"))
    for path in sorted(home.rglob("*.jsonl")):
        tx.TranscriptReader(store, NO_POLICY).read(path, "claude", final=True)
    from_transcript = rows(db_path, "transcript")
    assert len(from_transcript) == sent
    assert [r["new_turns"] for r in from_transcript] == [0] * sent
    assert {r["status"] for r in from_transcript} == {"skipped"}
    assert sum(r["new_turns"] for r in rows(db_path, "proxy")) == proxy_turns


def test_a_turn_read_from_the_transcript_is_not_journaled_again_by_the_proxy(
    tmp_path: Path, db_path: Path
) -> None:
    home = tmp_path / "home"
    install("claude", home)
    store = Store(db_path)
    for path in sorted(home.rglob("*.jsonl")):
        tx.TranscriptReader(store, NO_POLICY).read(path, "claude", final=True)
    read = sum(r["new_turns"] for r in rows(db_path, "transcript"))
    _capture_through_proxy(store, claude_file(home))
    _capture_through_proxy(store, next(home.rglob("agent-*.jsonl")))
    from_proxy = rows(db_path, "proxy")
    # What the proxy sees and the transcript does not (the context system message,
    # reminders) is journaled, but it is not conversation: nothing to analyse.
    assert {r["status"] for r in from_proxy} == {"skipped"}
    said = [t for r in from_proxy for t in r["turns"] if t["role"] in ("user", "assistant")]
    assert all(not t.get("text", "").strip() or "system-reminder" in t["text"] for t in said)
    assert sum(r["new_turns"] for r in rows(db_path, "transcript")) == read


# -- following ----------------------------------------------------------------------


def test_the_follower_picks_up_new_lines_and_new_sessions(tmp_path: Path, db_path: Path) -> None:
    root = Path.home() / ".claude" / "projects"
    source = claude_file(FIXTURES / "claude")
    lines = source.read_bytes().splitlines(keepends=True)
    live = root / "-home-dev-shop" / source.name
    live.parent.mkdir(parents=True)
    live.write_bytes(b"".join(lines[:20]))
    follower = tx.TranscriptFollower(
        Store(db_path), [tx.Target(agent="claude")], NO_POLICY, settle=LATER
    )
    follower.poll()
    first = len(rows(db_path))
    last = max(i for i, line in enumerate(lines) if b'"type":"assistant"' in line)
    live.write_bytes(b"".join(lines[: last + 1]))  # the reply's last line is the file's
    result = follower.poll()
    assert result.pieces > 0 and len(rows(db_path)) == first + result.pieces
    assert result.eventful and "new transcript lines" in result.describe()
    # The last exchange waits until the file is quiet (its message may still grow).
    open_turns = len(turns_of(db_path))
    old = time.time() - 3600
    os.utime(live, (old, old))
    follower.reader.settle = 60
    follower.poll()
    assert len(turns_of(db_path)) == open_turns + 2
    # The lines after it add nothing; the whole file reads as it would at once.
    live.write_bytes(b"".join(lines))
    follower.poll()
    assert [s[1:] for s in journal_shape(db_path)] == [
        s[1:] for s in _one_shot(tmp_path, source, "whole")
    ]
    # A session that starts later is found by the next poll.
    sub = next((FIXTURES / "claude").rglob("agent-*.jsonl"))
    target = root / "-home-dev-shop" / CLAUDE_SESSION / "subagents" / sub.name
    target.parent.mkdir(parents=True)
    shutil.copy(sub, target)
    os.utime(target, (old, old))
    follower.poll()
    assert turns_of(db_path, CLAUDE_SUBAGENT)


def test_since_and_project_choose_sessions(cli: Cli, db_path: Path) -> None:
    home = Path.home()
    install("claude", home)
    install("codex", home)
    codex = next((home / ".codex").rglob("*.jsonl"))
    old = time.time() - 40 * 86400
    os.utime(codex, (old, old))
    assert cli.json("ingest", "--agent", "all", "--since", "7d", "--no-analyze")["files"] == 2
    assert (
        cli.json("ingest", "--agent", "codex", "--project", "/elsewhere", "--no-analyze")["files"]
        == 0
    )
    got = cli.json("ingest", "--agent", "codex", "--project", PROJECT, "--no-analyze")
    assert got["files"] == 1 and got["exchanges"] == 2
    assert cli.fail("ingest", "--agent", "claude", "--since", "last tuesday").exit_code == 2
    assert cli.fail("ingest", "--agent", "opencode").exit_code == 2


# -- analysis -----------------------------------------------------------------------


def test_a_paid_analyzer_asks_before_a_big_backlog(cli: Cli, db_path: Path) -> None:
    install("claude", Path.home())
    env = {
        "ENGRAM_ANALYZER_API_KEY": "sk-ant-api03-"
        + "Xy7uI9oP1aS3dF5gH7jK9lZ2xC4vB6nM8qW0eR2tY4uI6oP8aS1d",
        "ENGRAM_ANALYZER_BASE_URL": "http://127.0.0.1:9",  # never reached
        "ENGRAM_TRANSCRIPTS_CONFIRM_TURNS": "3",
    }
    result = cli("ingest", "--agent", "claude", "--analyzer", "anthropic", env=env)
    assert "claude-haiku-4-5 takes" in result.stderr and "input tokens" in result.stderr
    assert "Not analysing" in result.stderr
    assert {r["status"] for r in rows(db_path)} == {"pending"}
    quiet = cli("ingest", "--agent", "claude", "--analyzer", "anthropic", "--no-analyze", env=env)
    assert "input tokens" not in quiet.stderr
    # A free analyzer needs no question.
    free = cli("ingest", "--agent", "claude", "--analyzer", "heuristic", env=env)
    assert "input tokens" not in free.stderr
    assert "pending" not in {r["status"] for r in rows(db_path)}


def test_the_estimate_counts_calls_and_bounds_the_cost(db_path: Path) -> None:
    from engram.analyzer.estimate import estimate
    from engram.config import AnalyzerConfig

    home = Path.home()
    install("claude", home)
    store = Store(db_path)
    for path in sorted(home.rglob("*.jsonl")):
        tx.TranscriptReader(store, NO_POLICY).read(path, "claude", final=True)
    settings = AnalyzerConfig()
    est = estimate(store, settings, "claude-haiku-4-5")
    assert est.exchanges == 8 and est.calls == 1
    assert est.output_tokens == settings.max_output_tokens
    assert est.priced and 0 < est.cost_usd < 0.1


# -- as a service -------------------------------------------------------------------


def test_service_install_transcripts(cli: Cli) -> None:
    alone = cli(
        "service", "install", "--transcripts", "claude,codex", "--dry-run", "--platform", "linux"
    )
    exec_line = next(x for x in alone.stdout.splitlines() if x.startswith("ExecStart="))
    assert exec_line.endswith("ingest --follow --agent claude,codex")
    assert "mitmproxy" not in exec_line  # no watcher retrying a mitmweb that is not there
    beside = cli(
        "service",
        "install",
        "--transcripts",
        "all",
        "--mitmweb",
        "--dry-run",
        "--platform",
        "linux",
    )
    watcher = [
        x for x in beside.stdout.splitlines() if x.startswith("ExecStart=") and " mitmproxy" in x
    ]
    assert watcher and watcher[0].endswith("mitmproxy --transcripts claude,codex,gemini,qwen")
    assert cli.fail("service", "install", "--transcripts", "cursor", "--dry-run").exit_code == 2


def test_mitmproxy_follows_transcripts_in_the_same_process(cli: Cli, db_path: Path) -> None:
    install("claude", Path.home())
    # mitmweb is not running: the watcher says so, the transcripts are read all the same.
    result = cli(
        "mitmproxy", "--transcripts", "claude", "--once", "--url", "http://127.0.0.1:9",
        "--analyzer", "none", ok=False,
    )  # fmt: skip
    assert result.exit_code == 1
    assert len(rows(db_path)) == 8


def test_status_counts_the_transcripts_read(cli: Cli) -> None:
    install("claude", Path.home())
    cli("ingest", "--agent", "claude", "--no-analyze")
    data = cli.json("status")
    assert data["transcripts"] == [{"agent": "claude", "files": 2, "exchanges": 8, "turns": 15}]
    assert "transcripts read: claude 2 files" in cli("status").stdout


def test_an_idle_file_gives_its_memory_back_and_is_read_right_when_it_grows(
    tmp_path: Path, db_path: Path
) -> None:
    source = claude_file(FIXTURES / "claude")
    lines = source.read_bytes().splitlines(keepends=True)
    path = tmp_path / source.name
    old = time.time() - 3600
    reader = tx.TranscriptReader(Store(db_path), NO_POLICY)
    for part in (lines[:50], lines):
        path.write_bytes(b"".join(part))
        os.utime(path, (old, old))
        reader.read(path, "claude")
        assert reader._cursors == {}  # nothing held for a session idle for an hour
    assert turns_of(db_path) == turns_of(_whole(tmp_path, source))


def _whole(tmp_path: Path, source: Path) -> Path:
    db = tmp_path / "whole.db"
    tx.TranscriptReader(Store(db), NO_POLICY).read(source, "claude", final=True)
    return db


def test_no_sessions_says_where_it_looked(cli: Cli) -> None:
    result = cli("ingest", "--agent", "codex", "--no-analyze")
    assert "0 files" in result.stdout
    assert f"no sessions found (looked in {Path.home() / '.codex' / 'sessions'}" in result.stderr
