"""The MCP server: engram's memory tools on the official `mcp` SDK (FastMCP).

Thin on purpose: each tool finds out who is calling (`Sessions.caller`), then runs the
matching `MemoryTools` method on a worker thread (a write may wait on SQLite's busy
timeout; the event loop, and with it every other HTTP session, must not), and turns an
`EngramError` into a tool error the model can read and act on.

Transports: stdio (what agents start from their config), or streamable HTTP on a
loopback address only, behind a bearer token checked in constant time (the SDK's
bearer-auth middleware with our verifier) and the SDK's DNS-rebinding protection
(Host and Origin must be loopback), so a web page in the user's browser cannot reach it.

Tool names and the resource URI are a contract with agents' configs and prompts.
"""

import functools
import hmac
import logging
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
from mcp import types
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.fastmcp import Context, FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.server.session import ServerSession
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import Field

from engram.errors import EngramError, log_failure, one_line
from engram.mcp import project
from engram.mcp.memory import Caller, MemoryTools, client_label

log = logging.getLogger("engram.mcp")

NAME = "engram"
RESOURCE_URI = "engram://project/memories"
ROOTS_TIMEOUT_S = 5.0  # a client that offers roots but never answers must not hang a tool

INSTRUCTIONS = """\
engram is your long-term memory across sessions: facts, decisions, preferences,
procedures and gotchas about this project and this user, kept from earlier sessions.
- Search it (memory_search) before answering questions about this project's conventions,
  setup, architecture, past decisions or the user's preferences, and before redoing
  something that may have been settled already.
- Add to it (memory_add) when the user asks you to remember something, or when a decision
  or convention was made that a later session will need.
- Correct it (memory_supersede, memory_forget) when you notice a memory is wrong or stale.
- Do not store transient details (the current task's progress, file contents, command
  output) and never credentials.
Memories may be outdated: what the user says now wins."""

SEARCH_DOC = """\
Search long-term memory: what earlier sessions learned about this project (conventions,
decisions, setup, gotchas) and about the user (preferences, in every project).
Use it before answering a question about the project's conventions, architecture, tools or
past decisions, or the user's preferences, and when something seems to have been decided
before. Returns the best matches first: id, content, kind, scope, score (0..1, higher is
closer), created/updated times and how often recall has used it. An empty list means
nothing relevant is known. Not needed for facts visible in the code in front of you."""

ADD_DOC = """\
Remember a durable fact for future sessions. Use it when the user asks you to remember
something, or when a decision, convention, preference or gotcha was established that a
later session would need. Write one self-contained statement (it is read later without
this conversation), e.g. "Releases are cut with `make release`; never push tags by hand."
Do not store transient details (the current task's progress, file contents, command
output, anything true only today), guesses, or credentials (secrets are redacted).
A fact already known is not stored twice: its existing id is returned."""

SUPERSEDE_DOC = """\
Correct a memory that is wrong or outdated: stores `content` as a new memory (same kind
and scope) and marks the old one superseded (kept in its history, no longer recalled).
Use the id from memory_search or memory_recent. Only this project's and global memories
can be changed. Returns the new memory's id."""

FORGET_DOC = """\
Stop using a memory that is wrong, obsolete or should never have been stored (the user can
restore it with `engram restore ID`). Give a short reason. Prefer memory_supersede when
there is a corrected version. Only this project's and global memories can be changed."""

RECENT_DOC = """\
The memories learned most recently in this project (and global ones), newest first: a
quick look at what was noted lately, e.g. when resuming work."""

EXPLAIN_DOC = """\
Show what engram's automatic recall would add to a request containing this text, and why:
every candidate memory with its scores and the gate's decision (`injected`, or a note
saying why not). For when the user asks why something was or was not remembered; use
memory_search to simply look things up."""

RESOURCE_DOC = (
    "This project's and the user's global memories as Markdown, the most useful first "
    "(the same selection `engram prime` gives an agent at session start)."
)

READ = types.ToolAnnotations(readOnlyHint=True, openWorldHint=False)
ADD = types.ToolAnnotations(
    readOnlyHint=False, destructiveHint=False, idempotentHint=True, openWorldHint=False
)
CHANGE = types.ToolAnnotations(readOnlyHint=False, destructiveHint=True, openWorldHint=False)
# engram.store.schema.Kind, spelled out for the tool's schema (a test keeps them equal).
KindName = Literal["fact", "decision", "preference", "procedure", "gotcha"]


class Sessions:
    """Who is calling: the client's name (from `initialize`) and the session's project,
    worked out once per session and again after the client says its roots changed."""

    def __init__(self, cwd: Path, project_flag: Path | None) -> None:
        self.cwd = cwd
        self.project_flag = project_flag
        self._projects: weakref.WeakKeyDictionary[ServerSession, str | None] = (
            weakref.WeakKeyDictionary()
        )

    async def caller(self, ctx: Context[Any, Any, Any]) -> Caller:
        session: ServerSession = ctx.session
        params = session.client_params
        client = client_label(params.clientInfo.name if params else None)
        if session not in self._projects:
            self._projects[session] = await self._project(session)
        return Caller(client, self._projects[session])

    def roots_changed(self) -> None:
        self._projects.clear()  # the notification does not say whose; ask each again

    async def _project(self, session: ServerSession) -> str | None:
        roots: list[str] | None = None
        offers = types.ClientCapabilities(roots=types.RootsCapability())
        if session.check_client_capability(offers):
            try:
                with anyio.fail_after(ROOTS_TIMEOUT_S):
                    result = await session.list_roots()
                roots = [str(root.uri) for root in result.roots]
            except Exception as exc:  # it offered roots but could not list them
                log.warning("engram mcp: the client's roots/list failed (%s); using cwd", exc)
        return project.resolve(roots, self.cwd, self.project_flag)


class StaticToken:
    """The SDK's TokenVerifier for one shared secret, compared in constant time."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    async def verify_token(self, token: str) -> AccessToken | None:
        if hmac.compare_digest(token.encode(), self._token):
            return AccessToken(token="", client_id="engram-http", scopes=[])
        return None


async def _run[T](fn: Callable[..., T], *args: Any) -> T:
    try:
        return await anyio.to_thread.run_sync(functools.partial(fn, *args))
    except EngramError as exc:
        raise ToolError(str(exc)) from None
    except Exception as exc:
        log_failure(log, f"engram mcp: {getattr(fn, '__name__', 'tool')} failed", exc)
        raise ToolError(f"internal error in engram: {one_line(exc)}") from None


def build(
    tools: MemoryTools,
    *,
    cwd: Path,
    project_flag: Path | None = None,
    budget: int = 4000,
    http: tuple[str, int, str] | None = None,
) -> FastMCP[Any]:
    """The server; `http=(host, port, token)` configures streamable HTTP's security."""
    sessions = Sessions(cwd, project_flag)
    options: dict[str, Any] = {}
    if http is not None:
        host, port, token = http
        url_host = f"[{host}]" if ":" in host else host
        hosts = sorted({url_host, "127.0.0.1", "localhost", "[::1]"})
        options = {
            "host": host,
            "port": port,
            "token_verifier": StaticToken(token),
            "auth": AuthSettings(
                issuer_url=f"http://{url_host}:{port}",  # type: ignore[arg-type]
                resource_server_url=None,
            ),
            "transport_security": TransportSecuritySettings(
                enable_dns_rebinding_protection=True,
                allowed_hosts=[f"{h}:{port}" for h in hosts] + hosts,
                allowed_origins=[f"http://{h}:{port}" for h in hosts],
            ),
        }
    app: FastMCP[Any] = FastMCP(NAME, instructions=INSTRUCTIONS, log_level="WARNING", **options)

    async def on_roots_changed(_notification: Any) -> None:
        sessions.roots_changed()

    # FastMCP has no decorator for client notifications; its low-level server does.
    app._mcp_server.notification_handlers[types.RootsListChangedNotification] = on_roots_changed

    @app.tool(name="memory_search", description=SEARCH_DOC, annotations=READ)
    async def memory_search(
        ctx: Context[Any, Any, Any],
        query: Annotated[str, Field(description="What to look for, in words or a question.")],
        limit: Annotated[int, Field(description="Most memories to return (1-50).")] = 5,
        scope: Annotated[
            Literal["project", "global"] | None,
            Field(description="Only this project's, or only global, memories. Default: both."),
        ] = None,
    ) -> dict[str, Any]:
        return await _run(tools.search, await sessions.caller(ctx), query, limit, scope)

    @app.tool(name="memory_add", description=ADD_DOC, annotations=ADD)
    async def memory_add(
        ctx: Context[Any, Any, Any],
        content: Annotated[str, Field(description="The fact, as one self-contained statement.")],
        kind: Annotated[
            KindName | None,
            Field(description="What it is. Default: fact."),
        ] = None,
        scope: Annotated[
            Literal["project", "global"],
            Field(description="project: this project only; global: true in every project."),
        ] = "project",
    ) -> dict[str, Any]:
        return await _run(tools.add, await sessions.caller(ctx), content, kind, scope)

    @app.tool(name="memory_supersede", description=SUPERSEDE_DOC, annotations=CHANGE)
    async def memory_supersede(
        ctx: Context[Any, Any, Any],
        id: Annotated[str, Field(description="The memory to correct, e.g. m-7k2q9x4d.")],
        content: Annotated[str, Field(description="The corrected fact.")],
    ) -> dict[str, Any]:
        return await _run(tools.supersede, await sessions.caller(ctx), id, content)

    @app.tool(name="memory_forget", description=FORGET_DOC, annotations=CHANGE)
    async def memory_forget(
        ctx: Context[Any, Any, Any],
        id: Annotated[str, Field(description="The memory to forget, e.g. m-7k2q9x4d.")],
        reason: Annotated[str | None, Field(description="Why, in a few words.")] = None,
    ) -> dict[str, Any]:
        return await _run(tools.forget, await sessions.caller(ctx), id, reason)

    @app.tool(name="memory_recent", description=RECENT_DOC, annotations=READ)
    async def memory_recent(
        ctx: Context[Any, Any, Any],
        limit: Annotated[int, Field(description="Most memories to return (1-100).")] = 10,
    ) -> dict[str, Any]:
        return await _run(tools.recent, await sessions.caller(ctx), limit)

    @app.tool(name="memory_explain", description=EXPLAIN_DOC, annotations=READ)
    async def memory_explain(
        ctx: Context[Any, Any, Any],
        query: Annotated[str, Field(description="The text of a request to the model.")],
    ) -> dict[str, Any]:
        return await _run(tools.explain, await sessions.caller(ctx), query)

    @app.resource(
        RESOURCE_URI,
        name="project-memories",
        title="engram: this project's memories",
        description=RESOURCE_DOC,
        mime_type="text/markdown",
    )
    async def project_memories() -> str:
        caller = await sessions.caller(app.get_context())
        try:
            return await anyio.to_thread.run_sync(tools.project_markdown, caller, budget)
        except EngramError as exc:
            raise ValueError(str(exc)) from None  # the SDK answers it as a resource error

    return app


def run_stdio(app: FastMCP[Any]) -> None:
    anyio.run(app.run_stdio_async)


def run_http(app: FastMCP[Any], sock: Any) -> None:
    """Serve streamable HTTP on an already bound socket (so port 0 works) until stopped."""
    import uvicorn

    config = uvicorn.Config(
        app.streamable_http_app(), log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    anyio.run(functools.partial(server.serve, sockets=[sock]))
