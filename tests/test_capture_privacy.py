"""Every capture door honours `<private>`, `engram pause` and `capture.ignore_projects`:
the reverse proxy, the mitmproxy addon (`engram run --mitm`'s path), the mitmweb watcher
and flow files, each driven by the real anthropic SDK through the real servers, and the
agents' transcripts (`engram ingest`, `--follow`)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anthropic
import httpx2
import pytest
from conftest import Cli

from engram.journaling import CapturePolicy
from engram.sources.capture_writer import journal_capture
from engram.sources.proxy import Proxy, ProxySettings
from engram.sources.server import ServerThread
from engram.store.db import Store
from tests.support.journal import journal_rows
from tests.support.llm_stub import LLMStub
from tests.support.mitmweb import Mitmweb
from tests.support.wait import wait_until

FAKE_KEY = "sk-ant-api03-Wq2eR5tY8uI1oP4aS7dF0gH3jK6lZ9xC2vB5nM8qW1eR4tY7uI0oP3aS6dF9gH2jK5lZ8x"
SHOP = "/home/dev/shop"
SECRET = "/home/dev/secret-api"  # matched by the ignore pattern "secret-*"

FIRST = "deploy with make ship. <private>staging password is Zq9-hunter2-prod</private>"
PAUSED = "while paused: the launch code is 4242-alpha"
RESUMED = "after resume: staging runs on port 5433"
IGNORED = "the client roadmap for Initech"


class Conversation:
    """A multi-turn conversation that repeats its history, as agents do."""

    def __init__(self, client: anthropic.Anthropic, session: str, project: str) -> None:
        self.client, self.session, self.project = client, session, project
        self.messages: list[dict] = []

    def say(self, text: str) -> None:
        self.messages.append({"role": "user", "content": text})
        reply = self.client.messages.create(
            model="claude-haiku-4-5",
            max_tokens=64,
            system=f"You are a coding agent.\nPrimary working directory: {self.project}\n",
            messages=self.messages,
            extra_headers={"X-Claude-Code-Session-Id": self.session},
        )
        self.messages.append(
            {
                "role": "assistant",
                "content": [b.model_dump(exclude_none=True) for b in reply.content],
            }
        )


def run_scenario(
    client: anthropic.Anthropic, pause: Callable[[], None], resume: Callable[[], None]
) -> None:
    shop = Conversation(client, "shop-1", SHOP)
    shop.say(FIRST)
    Conversation(client, "secret-1", SECRET).say(IGNORED)
    pause()
    shop.say(PAUSED)
    resume()
    shop.say(RESUMED)


def assert_private_paused_ignored(db: Path) -> None:
    rows = journal_rows(db)
    dump = json.dumps(rows)
    assert "deploy with make ship" in dump and "[private]" in dump
    assert "hunter2" not in dump and "Zq9" not in dump  # nor the stub's echo of it
    assert RESUMED in dump
    # not then, not after resume ("4242" alone also matches a hash or a timestamp's digits)
    assert "4242-alpha" not in dump and "while paused" not in dump
    assert "Initech" not in dump and all(r["project"] != SECRET for r in rows)
    conn = sqlite3.connect(db)
    projects = {p for (p,) in conn.execute("SELECT project FROM conversations")}
    conn.close()
    assert SECRET not in projects


def test_proxy_door(store: Store, db_path: Path, cli: Cli) -> None:
    with LLMStub() as stub:
        proxy = Proxy(
            ProxySettings(upstream=stub.url),
            capture=journal_capture(store, None, CapturePolicy.from_patterns(["secret-*"])),
        )
        server = ServerThread(proxy.app()).start()
        client = anthropic.Anthropic(
            base_url=server.url,
            api_key=FAKE_KEY,
            max_retries=0,
            http_client=httpx2.Client(trust_env=False, timeout=30),
        )

        def settled() -> bool:  # the background writer has journaled everything sent
            return proxy.stats.captured + proxy.stats.capture_failed >= len(stub.requests)

        def pause() -> None:
            wait_until(settled, what="the writer to catch up")
            cli("pause")

        def resume() -> None:
            wait_until(settled, what="the writer to catch up")
            cli("resume")

        try:
            run_scenario(client, pause, resume)
            wait_until(settled, what="the writer to catch up")
        finally:
            server.stop()
            proxy.close()
        upstream = json.dumps([r.json for r in stub.requests])
    assert "hunter2" in upstream and "4242" in upstream and "Initech" in upstream  # untouched
    assert_private_paused_ignored(db_path)


@pytest.mark.slow
def test_addon_watcher_and_flow_file_doors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One real mitmweb, three doors: its addon journals directly into one database
    (`engram_capture`, as under `engram run --mitm`), `engram mitmproxy` reads its flows
    into another, and `engram ingest` reads the flow file it wrote into a third. Each
    database is paused and resumed around the same turn; the watcher and the ingest run
    only after `engram resume`, so it is the flow's own time that keeps the turn out."""
    from typer.testing import CliRunner

    addon_db, watcher_db, file_db = (tmp_path / f"{n}.db" for n in ("addon", "watch", "file"))
    dump = tmp_path / "flows.mitm"
    monkeypatch.setenv("ENGRAM_CAPTURE_IGNORE_PROJECTS", "secret-*")
    monkeypatch.setenv("ENGRAM_DB", str(addon_db))  # mitmweb and its addon inherit these
    clis = [Cli(db, CliRunner()) for db in (addon_db, watcher_db, file_db)]
    migrated = Store(addon_db)
    migrated.ensure()  # creates the database (migrations are the slow part: copy it)
    migrated.close()
    for db in (watcher_db, file_db):
        src, dst = sqlite3.connect(addon_db), sqlite3.connect(db)
        src.backup(dst)
        src.close()
        dst.close()
    with (
        LLMStub() as stub,
        Mitmweb(
            extra=[
                "--set",
                "engram_capture=true",
                "--set",
                "engram_inject=false",
                "--set",
                f"save_stream_file={dump}",
            ]
        ) as mitm,
    ):
        client = anthropic.Anthropic(
            base_url=stub.url,
            api_key=FAKE_KEY,
            max_retries=0,
            http_client=httpx2.Client(proxy=mitm.proxy_url, trust_env=False, timeout=30),
        )

        def addon_caught_up() -> bool:
            n = len(stub.requests)
            conn = sqlite3.connect(addon_db)
            try:
                seen = conn.execute("SELECT sum(exchanges) FROM conversations").fetchone()[0]
            finally:
                conn.close()
            return (seen or 0) >= n - 1  # the ignored conversation leaves no trace at all

        def pause() -> None:
            wait_until(addon_caught_up, timeout=20, what="the addon to journal")
            for c in clis:
                c("pause")

        def resume() -> None:
            wait_until(lambda: addon_paused_turn_seen(addon_db), timeout=20, what="the paused turn")
            for c in clis:
                c("resume")

        run_scenario(client, pause, resume)
        wait_until(lambda: RESUMED in json.dumps(journal_rows(addon_db)), timeout=20, what="addon")
        clis[1](
            "mitmproxy", "--url", mitm.url, "--token", mitm.password, "--once", "--analyzer", "none"
        )
    clis[2]("ingest", str(dump))
    for db in (addon_db, watcher_db, file_db):
        assert_private_paused_ignored(db)


def claude_session(path: Path, session: str, cwd: str, said: list[tuple[str, float]]) -> None:
    """A Claude Code transcript (the fields its parser reads): each user line at its
    time, answered a second later."""
    lines, parent = [], None
    for n, (text, when) in enumerate(said):
        for role, content, at in (
            ("user", text, when),
            ("assistant", [{"type": "text", "text": f"Noted ({n})."}], when + 1),
        ):
            uuid = f"{session}-{role}-{n}"
            message: dict = {"role": role, "content": content}
            if role == "assistant":
                message |= {"id": f"msg_{session}_{n}", "model": "claude-opus-5-5"}
            stamp = datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")
            record = {"type": role, "message": message, "uuid": uuid, "parentUuid": parent}
            record |= {"timestamp": stamp.replace("+00:00", "Z"), "cwd": cwd}
            lines.append(json.dumps(record | {"sessionId": session}))
            parent = uuid
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def test_transcript_door(tmp_path: Path, db_path: Path) -> None:
    """A transcript is read after the fact: its own times decide what a pause covers,
    whenever the follower gets to them; an ignored project's file is not even read, and
    the journal's door withholds its pieces all the same when read directly."""
    from engram.sources.transcripts import Target, TranscriptFollower, TranscriptReader
    from engram.store import pause

    store = Store(db_path)
    now = time.time()
    with store.write() as session:
        pause.pause(session, timedelta(hours=1))  # from now: covers the middle exchange
    root = tmp_path / "projects"
    claude_session(
        root / "-home-dev-shop" / "shop-1.jsonl",
        "shop-1",
        SHOP,
        [(FIRST, now - 7200), (PAUSED, now + 1800), (RESUMED, now + 5400)],
    )
    secret = root / "-home-dev-secret-api" / "secret-1.jsonl"
    claude_session(secret, "secret-1", SECRET, [(IGNORED, now - 60)])
    policy = CapturePolicy.from_patterns(["secret-*"])
    follower = TranscriptFollower(store, [Target("claude", [root])], policy, settle=0)
    stats = follower.poll()  # what `engram ingest --follow` does each interval
    assert (stats.files, stats.pieces, stats.withheld) == (1, 2, 1)
    assert follower.poll().pieces == 0  # the withheld exchange is not read again
    assert TranscriptReader(store, policy, settle=0).read(secret, "claude").withheld == 1
    assert_private_paused_ignored(db_path)
    conn = sqlite3.connect(db_path)
    try:
        kept = conn.execute("SELECT path, project FROM transcript_files").fetchall()
    finally:
        conn.close()
    assert all(project != SECRET for _path, project in kept), kept


def addon_paused_turn_seen(db: Path) -> bool:
    """The addon has handled the paused request: the conversation's seen-counts grew
    (by hashes) while no row was written."""
    conn = sqlite3.connect(db)
    try:
        seen = conn.execute("SELECT seen FROM conversations WHERE key = 'shop-1'").fetchone()
    finally:
        conn.close()
    return bool(seen) and len(json.loads(seen[0])) >= 4


@pytest.mark.parametrize(
    ("patterns", "project", "ignored"),
    [
        (["secret-*"], "/work/secret-api", True),
        (["secret-*"], "/work/secret-api/web", True),  # below an ignored directory
        (["secret-*"], "/work/open-secret", False),
        (["~/clients/*"], "~/clients/acme/api", True),
        (["~/clients/acme"], "~/clients/acme", True),
        (["~/clients/acme"], "~/clients/acme-two", False),
        (["clients/acme"], "/srv/clients/acme/api", True),  # relative: at any depth
        (["/work/x/"], "/work/x", True),
        (["Secret-*"], "/work/secret-api", False),  # case-sensitive
        (["*"], None, False),  # an unknown project matches nothing
        ([], "/work/secret-api", False),
        (["secret-*"], "C:\\Users\\me\\secret-api", True),
    ],
)
def test_ignore_project_patterns(patterns: list[str], project: str | None, ignored: bool) -> None:
    import os

    if project is not None and project.startswith("~"):
        project = os.path.expanduser(project)
    assert CapturePolicy.from_patterns(patterns).ignores(project) is ignored


def test_ignore_projects_from_config_file_and_env(tmp_path: Path) -> None:
    from engram import config

    file = tmp_path / "config.toml"
    file.write_text('[capture]\nignore_projects = ["~/clients/*"]\n')
    assert config.load(file, env={}).capture.ignore_projects == ["~/clients/*"]
    env = {"ENGRAM_CAPTURE_IGNORE_PROJECTS": '["/a,b/*", "secret-*"]'}
    assert config.load(file, env=env).capture.ignore_projects == ["/a,b/*", "secret-*"]
    env = {"ENGRAM_CAPTURE_IGNORE_PROJECTS": "secret-*, ~/x"}
    assert config.load(file, env=env).capture.ignore_projects == ["secret-*", "~/x"]
