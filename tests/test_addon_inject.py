"""The mitmproxy addon injects memory too (mitmweb run from engram's environment)."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import time
from pathlib import Path

import anthropic
import httpx2
import pytest
from conftest import Cli

from engram.wire.block import BLOCK_OPEN
from tests.support.llm_stub import LLMStub
from tests.support.mitmweb import Mitmweb

FAKE_KEY = "sk-ant-api03-" + "Hn4kL8zX2cV5bN9mQ3wE6rT0yU4iO7pA1sD5fG8hJ2kL6zXq" * 2
PROJECT = "/home/dev/shop"


@pytest.mark.skipif(
    importlib.util.find_spec("engram.recall.service") is None,
    reason="recall is not in this build yet",
)
def test_addon_injects_and_the_journal_never_sees_the_block(
    cli: Cli, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli("add", "The staging database listens on port 5433", "--scope", PROJECT)
    monkeypatch.setenv("ENGRAM_DB", str(db_path))  # mitmweb inherits it
    with LLMStub() as stub, Mitmweb() as mitm:
        client = anthropic.Anthropic(
            base_url=stub.url,
            api_key=FAKE_KEY,
            max_retries=0,
            http_client=httpx2.Client(proxy=mitm.proxy_url, trust_env=False, timeout=30),
        )
        deadline = time.monotonic() + 60
        injected = False
        while time.monotonic() < deadline and not injected:  # recall warms up in the background
            client.messages.create(
                model="claude-haiku-4-5",
                max_tokens=20,
                system=f"You are a coding agent.\nPrimary working directory: {PROJECT}\n",
                messages=[{"role": "user", "content": "Which port does the staging database use?"}],
            )
            system = stub.requests[-1].json["system"]
            # A string system becomes a list of blocks when the memory block is added.
            injected = isinstance(system, list) and any(
                BLOCK_OPEN in block.get("text", "") for block in system
            )
            time.sleep(0.3)
        assert injected, "the addon never injected"
        system = stub.requests[-1].json["system"]
        assert "5433" in json.dumps(system)
        time.sleep(0.3)
        cli(
            "mitmproxy", "--url", mitm.url, "--token", mitm.password, "--once", "--analyzer", "none"
        )
    conn = sqlite3.connect(db_path)
    turns = [t for (t,) in conn.execute("SELECT turns FROM exchanges")]
    assert turns and "engram-memory" not in "".join(turns)
    # The injection was logged and counted.
    events = [a for (a,) in conn.execute("SELECT action FROM events")]
    assert "inject" in events
