"""The UI's views called directly (no HTTP): the recall audit as the journal keeps it.

`exchanges.recall` (engram/recall/audit.py) holds each request's recall decision as JSON:
`{"outcome": "injected", "memories": [{"id": ..., "score": ...}], "ms": ...}` or an
outcome such as `below gate` with a `reason`. Here the column is added by hand where a
database predates it, and filled as the proxy fills it.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from engram.config import Config
from engram.runtime import Runtime
from engram.store.db import Store
from engram.ui import health_view, journal_view
from engram.ui.launch import make_deps
from engram.ui.web import Deps, Page, Req, make_env
from tests.support import ui_seed


@pytest.fixture
def audited(tmp_path: Path) -> tuple[Deps, ui_seed.Seeded]:
    db = tmp_path / "engram.db"
    store = Store(db)
    data = ui_seed.small(store)
    store.close()
    pnpm = data.memory_ids["This project uses pnpm, never npm."]
    conn = sqlite3.connect(db)
    if "recall" not in {r[1] for r in conn.execute("PRAGMA table_info(exchanges)")}:
        conn.execute("ALTER TABLE exchanges ADD COLUMN recall TEXT")
    decisions = {
        data.exchange_ids[0]: {
            "outcome": "injected",
            "memories": [{"id": pnpm, "score": 0.912}],
            "ms": 4.2,
        },
        data.exchange_ids[1]: {"outcome": "below gate", "reason": "best 0.31 < 0.55", "ms": 3.9},
    }
    for exchange_id, decision in decisions.items():
        conn.execute(
            "UPDATE exchanges SET recall = ? WHERE id = ?", (json.dumps(decision), exchange_id)
        )
    conn.commit()
    conn.close()
    config = Config()
    config.override("store.path", str(db))
    deps = make_deps(Runtime(config))
    yield deps, data
    deps.close()


def render(deps: Deps, view: Any, path: str, **params: str) -> str:
    req = Req(path=path, query=params, match=params, csrf="t")
    page = view(deps, req)
    assert isinstance(page, Page)
    return (
        make_env()
        .get_template(page.template)
        .render(
            {"nav": "", "review_waiting": 0, **page.context, "csrf": "t", "path": path, "query": {}}
        )
    )


def test_a_requests_recall_decision_is_shown(audited: tuple[Deps, ui_seed.Seeded]) -> None:
    deps, data = audited
    first = render(deps, journal_view.request_detail, "/requests/1", id=str(data.exchange_ids[0]))
    pnpm = data.memory_ids["This project uses pnpm, never npm."]
    assert "Injected 1 memory" in first and "in 4.2 ms" in first
    assert f'href="/memories/{pnpm}"' in first and "0.912" in first
    assert "This project uses pnpm, never npm." in first  # the injected text, looked up
    second = render(deps, journal_view.request_detail, "/requests/2", id=str(data.exchange_ids[1]))
    assert "Nothing injected" in second and "below gate" in second and "best 0.31" in second
    third = render(deps, journal_view.request_detail, "/requests/3", id=str(data.exchange_ids[2]))
    assert "No recall decision recorded" in third
    listing = render(deps, journal_view.requests_list, "/requests")
    assert "1 injected" in listing and "below gate" in listing


def test_injection_rate_comes_from_the_decisions(audited: tuple[Deps, ui_seed.Seeded]) -> None:
    deps, _data = audited
    page = render(deps, health_view.health, "/health")
    # Two requests went through recall (one got memory); the third has no decision.
    assert "50% of 2 requests through recall got memory" in page
    assert "not through recall" in page


def test_an_unreadable_decision_is_shown_as_such() -> None:
    row = {"recall": "{not json"}
    audit = journal_view.audit_of(row)
    assert audit is not None and audit["outcome"] == "unreadable" and not audit["injected"]
    assert journal_view.audit_of({"recall": None}) is None
    assert journal_view.audit_of({}) is None
