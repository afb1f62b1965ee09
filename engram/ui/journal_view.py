"""Conversation and request pages (what each agent request carried, what recall gave it
and what the analyzer learned from it) and the recall playground."""

from __future__ import annotations

import json
from typing import Any

from engram.store import journal_pages, memory_pages, runs, schema
from engram.store.journal_pages import ExchangeFilter, ExchangeView
from engram.ui.web import BadRequest, Deps, Page, Req, pages

PER_PAGE = 50
PER_CONVERSATION = 25
TURN_CHARS = 20_000  # longer texts (tool results, pasted files) are cut, with a note


def _exchange_id(req: Req) -> int:
    raw = req.match["id"]
    if not raw.isdigit():
        raise BadRequest(f"{raw!r} is not an exchange id")
    return int(raw)


def _decorate(conn: Any, views: list[ExchangeView]) -> list[dict[str, Any]]:
    """Each exchange with its recall audit (the injected memories' texts filled in) and
    the memories derived from it."""
    derived = memory_pages.derived_from(conn, [v.id for v in views])
    audits = {v.id: audit_of(v.row) for v in views}
    ids = {m["id"] for a in audits.values() if a for m in a["memories"]}
    known = memory_pages.get_many(conn, sorted(ids)) if ids else {}
    for audit in audits.values():
        for item in audit["memories"] if audit else ():
            memory = known.get(item["id"])
            item["content"] = memory.content if memory else ""
            item["status"] = memory.status if memory else "gone"
    return [
        {
            "x": v.row,
            "turns": [_cut(t) for t in v.turns],
            "derived": derived.get(v.id, []),
            "audit": audits[v.id],
        }
        for v in views
    ]


def audit_of(row: dict[str, Any]) -> dict[str, Any] | None:
    """The recall decision the proxy or addon recorded for an exchange (`exchanges.recall`,
    engram/recall/audit.py), or None where none was (watcher, flow files, older rows)."""
    raw = row.get("recall")
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        data = {"outcome": "unreadable", "reason": "the recorded decision is not JSON"}
    if not isinstance(data, dict):
        data = {"outcome": "unreadable"}
    outcome = str(data.get("outcome") or "?")
    memories = [
        {"id": str(m.get("id", "")), "score": m.get("score")}
        for m in data.get("memories") or []
        if isinstance(m, dict)
    ]
    return {
        "outcome": outcome,
        "injected": outcome == "injected" and bool(memories),
        "reason": str(data.get("reason") or outcome),
        "memories": memories,
        "ms": data.get("ms"),
        "cached": bool(data.get("cached")),
    }


def _cut(turn: dict[str, Any]) -> dict[str, Any]:
    def cut(text: str | None) -> tuple[str, int]:
        text = text or ""
        return (text, 0) if len(text) <= TURN_CHARS else (text[:TURN_CHARS], len(text))

    text, full = cut(turn.get("text"))
    out = {**turn, "text": text, "cut": full}
    out["tool_results"] = [
        {**r, "content": cut(r.get("content"))[0], "cut": cut(r.get("content"))[1]}
        for r in turn.get("tool_results") or []
    ]
    return out


def recent_sources(deps: Deps, conn: Any) -> list[str]:
    """The capture sources seen in the health page's window (its per-day counts are
    cached), not a scan of the journal on every list."""
    from engram.ui import charts, health_view

    journal_cache, _ = health_view.caches(deps)
    days = journal_cache.get(conn, charts.days_back(health_view.DAYS))
    return sorted({s for entry in days.values() for s in entry.get("sources", {})})


def requests_list(deps: Deps, req: Req) -> Page:
    where = ExchangeFilter(
        project=req.arg("project"), source=req.arg("source"), status=req.arg("status")
    )
    before = req.int_arg("before", 0, low=0) or None
    with deps.store.read() as conn:
        views = journal_pages.page(conn, where, before=before, limit=PER_PAGE + 1)
        more = len(views) > PER_PAGE
        views = views[:PER_PAGE]
        items = _decorate(conn, views)
        projects = journal_pages.projects_seen(conn)
        sources = recent_sources(deps, conn)
    return Page(
        "requests.html",
        {
            "title": "Requests",
            "nav": "requests",
            "items": items,
            "next_before": views[-1].id if more and views else None,
            "where": where,
            "projects": projects,
            "sources": sources,
            "statuses": tuple(schema.ExchangeStatus),
        },
    )


def request_detail(deps: Deps, req: Req) -> Page:
    exchange_id = _exchange_id(req)
    with deps.store.read() as conn:
        view = journal_pages.get(conn, exchange_id)
        item = _decorate(conn, [view])[0]
        analyzer_runs = runs.covering(conn, exchange_id)
    return Page(
        "request.html",
        {"title": f"Request {exchange_id}", "nav": "requests", "item": item, "runs": analyzer_runs},
    )


def conversations_list(deps: Deps, req: Req) -> Page:
    project = req.arg("project")
    page = req.int_arg("page", 1, low=1)
    with deps.store.read() as conn:
        rows, total = journal_pages.conversations(
            conn, project=project, offset=(page - 1) * PER_PAGE, limit=PER_PAGE
        )
        projects = journal_pages.projects(conn)
    return Page(
        "conversations.html",
        {
            "title": "Conversations",
            "nav": "conversations",
            "rows": rows,
            "total": total,
            "page": page,
            "pages": pages(total, PER_PAGE),
            "project": project,
            "projects": projects,
        },
    )


def conversation_detail(deps: Deps, req: Req) -> Page:
    key = req.arg("key")
    if key is None:
        raise BadRequest("which conversation? (key=...)")
    after = req.int_arg("after", 0, low=0) or None
    with deps.store.read() as conn:
        conv = journal_pages.conversation(conn, key)
        where = ExchangeFilter(conversation=key)
        views = journal_pages.page(
            conn,
            where,
            before=after,
            limit=PER_CONVERSATION + 1,
            with_turns=True,
            oldest_first=True,
        )
        more = len(views) > PER_CONVERSATION
        views = views[:PER_CONVERSATION]
        items = _decorate(conn, views)
        total = journal_pages.count(conn, where)
    return Page(
        "conversation.html",
        {
            "title": "Conversation",
            "nav": "conversations",
            "conv": conv,
            "items": items,
            "total": total,
            "next_after": views[-1].id if more and views else None,
        },
    )


def playground(deps: Deps, req: Req) -> Page:
    """`engram recall` in the browser: the same Recaller, a dry run (nothing logged, no
    use counts), every candidate with its score and the gate's verdict."""
    query = req.arg("q")
    project = req.arg("project")
    result = None
    if query is not None:
        recaller = deps.recaller
        recaller.refresh()
        result = recaller.recall(query, project, None, wait=True)
    from engram.ui.memories_view import facets

    with deps.store.read() as conn:
        projects = [s for s, _n in facets(deps, conn)["scope"] if s != "global"]
    return Page(
        "playground.html",
        {
            "title": "Recall playground",
            "nav": "playground",
            "q": query or "",
            "project": project or "",
            "projects": projects,
            "result": result,
            "settings": deps.recaller.config,
        },
    )


ROUTES = (
    ("GET", "/requests", requests_list),
    ("GET", "/requests/{id}", request_detail),
    ("GET", "/conversations", conversations_list),
    ("GET", "/conversation", conversation_detail),
    ("GET", "/playground", playground),
)
