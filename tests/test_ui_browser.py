"""`engram ui` in a real headless Chromium (Debian's `chromium`, driven by Playwright).

One browser for the session, one server per module. Playwright's own browser download
never runs: the system Chromium is launched by path. Without it the tests skip, except
under CI=true, where they fail (scripts/test-setup.sh installs it).

Screenshots land in the test's tmp dir; with ENGRAM_SCREENSHOTS=DIR (`make screenshots`)
they are also written there: docs/images/ holds the README's, generated this way.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli
from typer.testing import CliRunner

from tests.support import ui_seed
from tests.support.ui_server import UiServer
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow

# Read at import: the autouse fixture clears ENGRAM_* from each test's environment.
CHROMIUM = os.environ.get("ENGRAM_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = os.environ.get("ENGRAM_SCREENSHOTS")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() or not shutil.which(CHROMIUM):
        message = f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("playwright is not installed (it is in the dev extra)")
        pytest.skip("playwright is not installed")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    try:
        yield page
    finally:
        context.close()


def shot(page: Any, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"ui-{name}.png"
    page.screenshot(path=str(path), full_page=False)
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(SCREENSHOTS) / path.name)
    assert path.stat().st_size > 10_000  # a rendered page, not a blank one
    return path


def test_log_in_search_edit_forget_and_see_it_in_the_cli(
    page: Any, ui_server: UiServer, ui_seeded: tuple[Path, ui_seed.Seeded], tmp_path: Path
) -> None:
    db, data = ui_seeded
    cli = Cli(db, CliRunner())
    page.goto(ui_server.url)
    assert page.url == ui_server.base + "/memories"  # the token traded for the cookie
    assert page.locator("h1").inner_text() == "Memories"
    assert "This project uses pnpm, never npm." in page.locator("#results").inner_text()
    shot(page, tmp_path, "memories")

    # Search as you type (htmx swaps the results and keeps the URL shareable).
    page.fill("#q", "deploy staging")
    page.wait_for_url(re.compile(r"q=deploy(%20|\+)staging"))  # pushed: shareable
    page.wait_for_selector("text=BM25 and meaning")
    results = page.locator("#results").inner_text()
    assert "make deploy ENV=staging" in results
    expected = [m["id"] for m in cli.json("search", "deploy staging", "--limit", "50")]
    shown = page.locator("#results a.mid").all_inner_texts()
    assert shown == expected  # the same ranking as `engram search`

    # Open it, edit it, and the CLI sees the new text with the UI as the author.
    target = data.memory_ids["Deploy with `make deploy ENV=staging` before production."]
    page.click(f"#results a.mid:text('{target}')")
    page.wait_for_url(f"**/memories/{target}")
    page.fill("textarea[name=content]", "Deploy with `make deploy ENV=staging`, then production.")
    page.click("button:text('Save edit')")
    page.wait_for_selector("text=Saved.")
    shown_cli = cli.json("show", target)
    assert shown_cli["content"] == "Deploy with `make deploy ENV=staging`, then production."
    assert shown_cli["events"][0]["action"] == "edit" and shown_cli["events"][0]["actor"] == "ui"
    assert "then production" in page.locator("#content").inner_text()
    shot(page, tmp_path, "memory")

    # Forget it: gone from `engram list`, and the page offers restore.
    page.click("button:text('Forget')")
    page.wait_for_selector("text=Forgotten")
    assert target not in [m["id"] for m in cli.json("list")]
    assert page.locator("button:text('Restore')").count() == 1
    assert page.errors == []  # no script error, no CSP violation


def test_a_requests_audit_and_what_it_taught(
    page: Any, ui_server: UiServer, ui_seeded: tuple[Path, ui_seed.Seeded], tmp_path: Path
) -> None:
    _db, data = ui_seeded
    page.goto(ui_server.url)
    page.click("nav >> text=Requests")
    page.click(f"a[href='/requests/{data.exchange_ids[0]}']")
    page.wait_for_selector("#audit")
    assert "Recall decision" in page.locator("#audit").inner_text()
    assert "This project uses pnpm, never npm." in page.content()
    shot(page, tmp_path, "request")
    page.click("text=its conversation")
    page.wait_for_selector("article.exchange")
    assert page.locator("article.exchange").count() == 2
    assert "[REDACTED" in page.content() and "sk-ant-api03" not in page.content()
    shot(page, tmp_path, "conversation")
    page.goto(ui_server.base + "/playground")
    page.fill("textarea[name=q]", "how do I run the tests?")
    page.fill("input[name=project]", "/home/dev/shop")
    page.click("button:text('Recall')")
    page.wait_for_selector("#verdict")
    assert "make test" in page.locator("#block").inner_text()
    shot(page, tmp_path, "playground")
    page.goto(ui_server.base + "/health")
    page.wait_for_selector("#doctor table", timeout=60_000)  # loaded after the page
    assert page.locator("svg.chart").count() >= 4
    shot(page, tmp_path, "health")
    assert page.errors == []


class _Evil(BaseHTTPRequestHandler):
    """Another site's page that tries to make the logged-in browser forget a memory."""

    target = ""

    def do_GET(self) -> None:
        body = (
            "<!doctype html><form id=f method=post action='" + self.target + "'>"
            "<input name=csrf value=guess></form>"
            "<script>document.getElementById('f').submit()</script>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_cross_site_post_from_the_browser_is_refused(
    page: Any, ui_server: UiServer, ui_seeded: tuple[Path, ui_seed.Seeded]
) -> None:
    db, data = ui_seeded
    cli = Cli(db, CliRunner())
    victim = data.memory_ids["The user prefers short answers without preamble."]
    page.goto(ui_server.url)  # logged in: the browser holds the session cookie
    _Evil.target = f"{ui_server.base}/memories/{victim}/forget"
    evil = ThreadingHTTPServer(("127.0.0.1", 0), _Evil)
    thread = threading.Thread(target=evil.serve_forever, daemon=True)
    thread.start()
    try:
        # localhost:N is another site; 127.0.0.1:N is the same site on another port
        # (SameSite does not help there: the CSRF token and the Origin check do).
        for host in ("localhost", "127.0.0.1"):
            page.goto(f"http://{host}:{evil.server_address[1]}/")
            page.wait_for_load_state("load")
            wait_until(lambda: "Forbidden" in page.content(), what="the refusal page")
            assert cli.json("show", victim)["status"] == "active"
    finally:
        evil.shutdown()
        evil.server_close()
        thread.join(timeout=5)
