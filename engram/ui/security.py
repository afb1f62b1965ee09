"""Who may use the UI: the person who started it, from a page it served, nobody else.

The memory store holds what agents were told about a user's code and machine, and the
UI can change it, so a page on loopback is not trusted for being on loopback:
- **Token.** A random token per start is in the printed URL (as Jupyter does). Opening
  it sets an HttpOnly, SameSite=Strict session cookie and redirects to the URL without
  it (out of the address bar and history). Anything without the cookie gets 403.
- **Host.** Only `127.0.0.1:PORT` and `localhost:PORT` are served: a DNS-rebinding page
  (evil.example resolving to 127.0.0.1) sends its own Host and is refused.
- **CSRF.** Every state change is a POST carrying the per-start CSRF token (a hidden
  field, or the X-CSRF-Token header from htmx) and, when the browser says where it comes
  from (Origin, Sec-Fetch-Site), coming from this origin. SameSite does not stop another
  port on 127.0.0.1: that is the same *site*, so the token and the origin check do.
- **Headers.** A Content-Security-Policy allowing this origin only (no inline script, no
  third-party origin), no framing, no Referer to other sites; the token leaves the
  address bar at once (a redirect), so no page URL carries it.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

COOKIE = "engram_ui"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # same-origin, not no-referrer: under no-referrer Chromium sends `Origin: null` on our
    # own form POSTs, which the origin check must refuse. Other sites get no Referer.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _same(a: str | None, b: str) -> bool:
    return a is not None and hmac.compare_digest(a.encode(), b.encode())


@dataclass
class Guard:
    """The secrets of one UI start and the checks made on every request."""

    port: int = 0
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    session: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    def hosts(self) -> set[str]:
        return {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}

    def origins(self) -> set[str]:
        return {f"http://{h}" for h in self.hosts()}

    def host_ok(self, host: str | None) -> bool:
        return (host or "").lower() in self.hosts()

    def token_ok(self, token: str | None) -> bool:
        return _same(token, self.token)

    def session_ok(self, cookie: str | None) -> bool:
        return _same(cookie, self.session)

    def cross_site(self, headers: dict[str, str] | object) -> str | None:
        """Why a state-changing request does not come from one of our pages, or None."""
        get = getattr(headers, "get")  # noqa: B009 (aiohttp's CIMultiDict or a dict)
        fetch_site = get("Sec-Fetch-Site")
        if fetch_site and fetch_site not in ("same-origin", "none"):
            return f"request from another site ({fetch_site})"
        origin = get("Origin")
        if origin is not None and origin not in self.origins():
            return f"request from another origin ({origin})"
        if origin is None:
            referer = get("Referer")
            if referer:
                parts = urlsplit(referer)
                if f"{parts.scheme}://{parts.netloc}" not in self.origins():
                    return "request from another origin (referer)"
        return None

    def csrf_ok(self, submitted: str | None) -> bool:
        return _same(submitted, self.csrf)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}?token={self.token}"
