"""The aiohttp application behind `engram ui`: routes, the security middleware, serving.

Every response carries the security headers; every request passes the checks in
`security.Guard` before a view runs. Views run on worker threads (see web.py).
"""

from __future__ import annotations

import asyncio
import html
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from engram.errors import EngramError, NotFound, log_failure
from engram.ui import security
from engram.ui.security import Guard
from engram.ui.web import STATIC, BadRequest, Deps, Page, Redirect, Req, View, make_env

log = logging.getLogger("engram.ui")

DEPS: web.AppKey[Deps] = web.AppKey("deps", Deps)
GUARD: web.AppKey[Guard] = web.AppKey("guard", Guard)
ENV: web.AppKey[Any] = web.AppKey("env", object)

MAX_BODY = 256 * 1024  # a memory is at most 4000 characters; forms are small

STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


def _refuse(status: int, title: str, detail: str) -> web.Response:
    body = (
        "<!doctype html><html><head><meta charset='utf-8'><title>engram ui</title></head>"
        f"<body><h1>{title}</h1><p>{detail}</p></body></html>"
    )
    return web.Response(status=status, text=body, content_type="text/html")


def _secure(response: web.StreamResponse) -> web.StreamResponse:
    for name, value in security.HEADERS.items():
        response.headers.setdefault(name, value)
    return response


@web.middleware
async def guard_middleware(request: web.Request, handler: Callable[..., Any]) -> Any:
    guard = request.app[GUARD]
    if not guard.host_ok(request.host):
        return _secure(_refuse(403, "Forbidden", "Unknown host name."))
    if request.path == "/healthz":  # for `engram doctor`: says what it is, nothing else
        return _secure(web.json_response({"app": "engram-ui"}))
    token = request.query.get("token")
    if token is not None:
        if not guard.token_ok(token):
            return _secure(_refuse(403, "Forbidden", "That link's token is not this server's."))
        query = {k: v for k, v in request.query.items() if k != "token"}
        target = request.path + ("?" + urlencode(query) if query else "")
        response = web.HTTPSeeOther(target)
        response.set_cookie(
            security.COOKIE,
            guard.session,
            httponly=True,
            samesite="Strict",
            path="/",
        )
        return _secure(response)
    if not guard.session_ok(request.cookies.get(security.COOKIE)):
        return _secure(
            _refuse(
                403,
                "Forbidden",
                "Open the link <code>engram ui</code> printed: it carries this start's token.",
            )
        )
    if request.method not in security.SAFE_METHODS:
        why = guard.cross_site(request.headers)
        if why is None:
            form = await request.post()
            submitted = request.headers.get(security.CSRF_HEADER) or form.get(security.CSRF_FIELD)
            if not guard.csrf_ok(submitted if isinstance(submitted, str) else None):
                why = "missing or wrong CSRF token"
        if why is not None:
            log.warning("refused %s %s: %s", request.method, request.path, why)
            return _secure(_refuse(403, "Forbidden", f"Refused: {html.escape(why)}."))
    return _secure(await handler(request))


def view(fn: View) -> Callable[[web.Request], Any]:
    """Adapt a synchronous view to aiohttp: run it on a thread, render its page."""

    async def handle(request: web.Request) -> web.StreamResponse:
        app = request.app
        form: dict[str, str] = {}
        if request.method == "POST":
            posted = await request.post()
            form = {k: v for k, v in posted.items() if isinstance(v, str)}
        req = Req(
            path=request.path,
            query=dict(request.query),
            form=form,
            match=dict(request.match_info),
            csrf=app[GUARD].csrf,
        )
        start = time.perf_counter()
        response = await asyncio.to_thread(_run, app, fn, req)
        ms = (time.perf_counter() - start) * 1000
        response.headers["Server-Timing"] = f"app;dur={ms:.1f}"  # bench/ui.py reads it
        return response

    return handle


def _run(app: web.Application, fn: View, req: Req) -> web.StreamResponse:
    try:
        return _render(app, fn, req)
    except Exception as exc:  # a bug or a broken store: say so, keep serving
        log_failure(log, f"engram ui: {req.path} failed", exc)
        page = Page(
            "error.html",
            {
                "title": "Something went wrong",
                "message": f"{type(exc).__name__}: {exc}",
                "back": None,
            },
            500,
        )
        return _render(app, lambda _d, _r: page, req)


def _render(app: web.Application, fn: View, req: Req) -> web.StreamResponse:
    try:
        result = fn(app[DEPS], req)
    except NotFound as exc:
        result = _error(req, "Not found", exc, 404)
    except BadRequest as exc:
        result = _error(req, "Bad request", exc, 400)
    except EngramError as exc:  # a refused change: a duplicate text, a locked database
        result = _error(req, "Not done", exc, 409)
    if isinstance(result, Redirect):
        return web.HTTPSeeOther(result.location)
    context = {
        "nav": "",
        "review_waiting": 0 if result.template.startswith("_") else _waiting(app[DEPS]),
        **result.context,
        "csrf": req.csrf,
        "path": req.path,
        "query": req.query,
    }
    html = app[ENV].get_template(result.template).render(context)
    return web.Response(text=html, status=result.status, content_type="text/html")


def _waiting(deps: Deps) -> int:
    from engram.ui.memories_view import waiting_for_review

    try:
        return waiting_for_review(deps)
    except Exception:  # the page itself says what is wrong with the store
        return 0


def _error(req: Req, title: str, exc: EngramError, status: int) -> Page:
    # After a refused change (/memories/ID/edit, /review/ID/accept), back to the memory.
    back = f"/memories/{quote(req.match['id'])}" if req.form and "id" in req.match else None
    return Page("error.html", {"title": title, "message": str(exc), "back": back}, status)


async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    path = STATIC / name
    if "/" in name or name.startswith(".") or not path.is_file():
        raise web.HTTPNotFound()
    response = web.FileResponse(path)
    response.content_type = STATIC_TYPES.get(path.suffix, "application/octet-stream")
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


def make_app(deps: Deps, guard: Guard) -> web.Application:
    from engram.ui import health_view, journal_view, memories_view

    app = web.Application(middlewares=[guard_middleware], client_max_size=MAX_BODY)
    app[DEPS] = deps
    app[GUARD] = guard
    app[ENV] = make_env()

    async def root(_request: web.Request) -> web.StreamResponse:
        raise web.HTTPSeeOther("/memories")

    app.router.add_get("/", root)
    app.router.add_get("/static/{name}", static)
    for method, path, fn in (
        *memories_view.ROUTES,
        *journal_view.ROUTES,
        *health_view.ROUTES,
    ):
        app.router.add_route(method, path, view(fn))
    return app


async def start(
    deps: Deps, *, port: int = 0, guard: Guard | None = None
) -> tuple[web.AppRunner, Guard]:
    """Serve on 127.0.0.1 only (never another address: there is no option for it)."""
    guard = guard or Guard()
    app = make_app(deps, guard)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, reuse_address=False)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    server = getattr(site, "_server", None)
    sockets = getattr(server, "sockets", None) or []
    guard.port = sockets[0].getsockname()[1] if sockets else port
    return runner, guard
