"""Memory pages: the list (filters, search), one memory (history, provenance, curation)
and the review queue of quarantined memories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from engram.errors import EngramError
from engram.store import journal_pages, memory_pages, reader, review, schema
from engram.store.memory_pages import MemoryFilter
from engram.store.records import MemoryRecord
from engram.ui.web import BadRequest, Deps, Page, Redirect, Req, pages

PER_PAGE = 50
SEARCH_LIMIT = 50
ACTOR = "ui"
REVIEW = schema.MemoryStatus.REVIEW  # quarantined (issue 14.4): never injected until accepted


def _filter(req: Req) -> MemoryFilter:
    status = req.arg("status")
    kind = req.arg("kind")
    if kind is not None and kind not in schema.KINDS:
        raise BadRequest(f"unknown kind {kind!r}")
    return MemoryFilter(
        scope=req.arg("project"), kind=kind, status=status, source=req.arg("source")
    )


def facets(deps: Deps, conn: Any) -> dict[str, list[tuple[str, int]]]:
    """The filter menus' values and counts, recounted only when memories change."""
    mark = memory_pages.change_mark(conn)
    cached = deps.memo.get("facets")
    if cached is None or cached[0] != mark:
        cached = (mark, memory_pages.facets(conn))
        deps.memo["facets"] = cached
    return cached[1]


def waiting_for_review(deps: Deps) -> int:
    """For the navigation bar on every page (from the cached menus: ~0.1 ms)."""
    with deps.store.read() as conn:
        return dict(facets(deps, conn)["status"]).get(REVIEW, 0)


def memory_list(deps: Deps, req: Req) -> Page:
    where = _filter(req)
    query = req.arg("q")
    page = req.int_arg("page", 1, low=1)
    scored: list[tuple[MemoryRecord, float]] = []
    rows: list[MemoryRecord] = []
    total = 0
    mode = ""
    with deps.store.read() as conn:
        menus = facets(deps, conn)
        if query is None:
            rows, total = memory_pages.page(
                conn, where, offset=(page - 1) * PER_PAGE, limit=PER_PAGE
            )
    if query is not None:
        scored, mode = search(deps, query, where)
        total = len(scored)
    return Page(
        "memories.html",
        {
            "title": "Memories",
            "nav": "memories",
            "rows": rows,
            "scored": scored,
            "q": query or "",
            "mode": mode,
            "total": total,
            "page": page,
            "pages": pages(total, PER_PAGE),
            "facets": menus,
            "where": where,
            "kinds": schema.KINDS,
        },
    )


def search(
    deps: Deps, query: str, where: MemoryFilter
) -> tuple[list[tuple[MemoryRecord, float]], str]:
    """Active memories rank as `engram search` ranks them (recall's hybrid BM25 + meaning);
    other statuses, which recall never sees, by words (BM25)."""
    if where.status not in (None, schema.MemoryStatus.ACTIVE):
        with deps.store.read() as conn:
            return memory_pages.search_words(conn, query, where, limit=SEARCH_LIMIT), "words"
    from engram.recall.service import semantic_search

    recaller = deps.recaller
    recaller.refresh()  # the UI's own edits a moment ago are in the ranking
    hits = semantic_search(
        deps.store,
        deps.config,
        query,
        scope=where.scope,
        kind=where.kind,
        limit=SEARCH_LIMIT * (4 if where.source else 1),
        recaller=recaller,
    )
    if where.source is not None:
        hits = [(m, s) for m, s in hits if m.source == where.source][:SEARCH_LIMIT]
    return list(hits), "hybrid"


def _memory_id(deps: Deps, req: Req) -> str:
    with deps.store.read() as conn:
        return reader.resolve_id(conn, req.match["id"])


def memory_detail(deps: Deps, req: Req) -> Page | Redirect:
    memory_id = _memory_id(deps, req)
    if memory_id != req.match["id"]:
        return Redirect(f"/memories/{quote(memory_id)}")
    since = (datetime.now(UTC) - timedelta(days=29)).strftime("%Y-%m-%d")
    with deps.store.read() as conn:
        memory = reader.get_memory(conn, memory_id)
        chain = memory_pages.lineage(conn, memory_id)
        events = memory_pages.history(conn, memory_id)
        injected = memory_pages.injections(conn, memory_id, since=since)
        refs = [int(p[2:]) for p in memory.provenance if p.startswith("x-") and p[2:].isdigit()]
        exchanges = journal_pages.get_many(conn, refs)
    others = [p for p in memory.provenance if not (p.startswith("x-") and p[2:].isdigit())]
    from engram.ui import charts

    return Page(
        "memory.html",
        {
            "title": memory.id,
            "nav": "review" if memory.status == REVIEW else "memories",
            "m": memory,
            "chain": chain if len(chain) > 1 else [],
            "events": events,
            "injected": injected,
            "inject_chart": charts.daily_bars(injected.per_day, days=30, label="injections"),
            "exchanges": [(i, exchanges.get(i)) for i in refs],
            "other_sources": others,
            "kinds": schema.KINDS,
            "done": req.arg("done"),
            "error": None,
        },
    )


def _change(deps: Deps, req: Req, action: str) -> Redirect:
    """edit / supersede / forget / restore, as the CLI does them, logged as by `ui`."""
    from engram.redact import redact
    from engram.store import memories

    memory_id = _memory_id(deps, req)
    target = memory_id
    with deps.store.write() as session:
        if action == "edit":
            memories.edit(session, memory_id, redact(_text(req)), actor=ACTOR)
        elif action == "supersede":
            kind = req.form.get("kind") or None
            _old, new = memories.supersede(
                session, memory_id, redact(_text(req)), kind=kind, source=ACTOR, actor=ACTOR
            )
            target = new.id
        elif action == "forget":
            memories.forget(session, memory_id, actor=ACTOR)
        elif action == "restore":
            memories.restore(session, memory_id, actor=ACTOR)
    return Redirect(f"/memories/{quote(target)}?done={action}")


def _text(req: Req) -> str:
    text = req.form.get("content", "")
    if not text.strip():
        raise EngramError("the text is empty")
    return text.replace("\r\n", "\n")


def edit(deps: Deps, req: Req) -> Redirect:
    return _change(deps, req, "edit")


def supersede(deps: Deps, req: Req) -> Redirect:
    return _change(deps, req, "supersede")


def forget(deps: Deps, req: Req) -> Redirect:
    return _change(deps, req, "forget")


def restore(deps: Deps, req: Req) -> Redirect:
    return _change(deps, req, "restore")


# -- review queue --------------------------------------------------------------------


def review_list(deps: Deps, req: Req) -> Page:
    """The quarantine (engram.store.review, issue 14.4), with why each memory waits."""
    page = req.int_arg("page", 1, low=1)
    reasons: dict[str, tuple[list[str], str | None]] = {}
    with deps.store.read() as conn:
        rows, total = memory_pages.page(
            conn, MemoryFilter(status=REVIEW), offset=(page - 1) * PER_PAGE, limit=PER_PAGE
        )
        if rows:
            for held in review.held(conn):
                reasons[held.memory.id] = (list(held.reasons), held.supersedes)
    return Page(
        "review.html",
        {
            "title": "Review",
            "nav": "review",
            "rows": rows,
            "reasons": reasons,
            "total": total,
            "page": page,
            "pages": pages(total, PER_PAGE),
            "done": req.arg("done"),
        },
    )


def _review(deps: Deps, req: Req, accept: bool) -> Redirect:
    """Accept carries out the supersede a memory was held with; reject retires it for
    good (a later analyzer run does not hold the same text again)."""
    memory_id = _memory_id(deps, req)
    with deps.store.write() as session:
        if accept:
            review.accept(session, memory_id, actor=ACTOR)
        else:
            review.reject(session, memory_id, actor=ACTOR)
    return Redirect(f"/review?done={'accepted' if accept else 'rejected'}")


def accept(deps: Deps, req: Req) -> Redirect:
    return _review(deps, req, True)


def reject(deps: Deps, req: Req) -> Redirect:
    return _review(deps, req, False)


ROUTES = (
    ("GET", "/memories", memory_list),
    ("GET", "/memories/{id}", memory_detail),
    ("POST", "/memories/{id}/edit", edit),
    ("POST", "/memories/{id}/supersede", supersede),
    ("POST", "/memories/{id}/forget", forget),
    ("POST", "/memories/{id}/restore", restore),
    ("GET", "/review", review_list),
    ("POST", "/review/{id}/accept", accept),
    ("POST", "/review/{id}/reject", reject),
)
