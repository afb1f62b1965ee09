"""The UI's small framework: what a view gets, what it returns, and the templates.

Views are plain synchronous functions `(deps, req) -> Page | Redirect`: they read
SQLite and render Jinja2, both blocking, so the server runs each one on a worker
thread and the event loop stays free (a slow doctor check never stalls a page).
"""

from __future__ import annotations

import functools
import math
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import jinja2
from markupsafe import Markup

from engram.errors import EngramError

if TYPE_CHECKING:
    from engram.config import Config
    from engram.recall.service import Recaller
    from engram.store.db import Store

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


class BadRequest(EngramError):
    """A parameter a page cannot use (a malformed id, a page number that is not one)."""


@dataclass
class Deps:
    """The parts the UI works with, built once per start."""

    store: Store
    config: Config
    make_recaller: Callable[[], Recaller]
    _recaller: Recaller | None = field(default=None, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    memo: dict[str, Any] = field(default_factory=dict, repr=False)  # views' caches

    @property
    def recaller(self) -> Recaller:
        """One Recaller for the server's life: the model and index load once."""
        with self.lock:
            if self._recaller is None:
                self._recaller = self.make_recaller()
            return self._recaller

    def close(self) -> None:
        if self._recaller is not None:
            self._recaller.stop_background()  # no thread left inside onnxruntime at exit
            self._recaller.close()
        self.store.close()


@dataclass
class Req:
    """What a view needs of the HTTP request."""

    path: str
    query: Mapping[str, str]
    form: Mapping[str, str] = field(default_factory=dict)
    match: Mapping[str, str] = field(default_factory=dict)
    csrf: str = ""

    def arg(self, name: str, default: str | None = None) -> str | None:
        value = self.query.get(name)
        return value.strip() if value and value.strip() else default

    def int_arg(self, name: str, default: int, *, low: int = 0, high: int = 10**9) -> int:
        raw = self.arg(name)
        if raw is None:
            return default
        try:
            return max(low, min(high, int(raw)))
        except ValueError:
            raise BadRequest(f"{name} must be a number, got {raw!r}") from None


@dataclass
class Page:
    template: str
    context: dict[str, Any]
    status: int = 200


@dataclass
class Redirect:
    location: str


View = Callable[[Deps, Req], Page | Redirect]


# -- template helpers ------------------------------------------------------------------


def when(value: str | None) -> str:
    """A stored UTC timestamp as local time, to the minute."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


@functools.lru_cache(maxsize=4)
def _home(_env_home: str) -> str:
    return str(Path.home())  # ~0.2 ms a call; a list page shows 50 paths


def home_label(scope: str | None) -> str:
    """A project path with the home directory as ~ (the full path is in the title)."""
    if not scope:
        return "(none)"
    home = _home(os.environ.get("HOME", ""))
    return "~" + scope[len(home) :] if scope.startswith(home + "/") else scope


def short(text: str | None, width: int = 120) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def number(value: float | int | None) -> str:
    if value is None:
        return "0"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}"


def dollars(value: float | None) -> str:
    value = value or 0.0
    return f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:.4f}"


def link(path: str, query: Mapping[str, Any] | None = None, **changes: Any) -> str:
    """`path` with the current query string changed (None removes a parameter)."""
    params = {k: v for k, v in (query or {}).items() if k != "token"}
    params.update(changes)
    clean = {k: v for k, v in params.items() if v not in (None, "")}
    return path + ("?" + urlencode(clean) if clean else "")


def pages(total: int, per_page: int) -> int:
    return max(1, math.ceil(total / per_page))


def make_env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=when, home=home_label, short=short, number=number, dollars=dollars)
    env.globals.update(link=link, Markup=Markup)
    return env
