"""Markers shared by every part of engram that speaks HTTP: the single source of truth.

engram's own requests (analyzer, embeddings, mirror, doctor, the claude-code analyzer's
child) carry `X-Engram-Internal: 1`, and every capture path drops requests that carry
it, so engram never journals or analyses its own traffic (invariant 2).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engram.wire.model import Format

INTERNAL_HEADER = "X-Engram-Internal"
INTERNAL_VALUE = "1"
INTERNAL_HEADERS: Mapping[str, str] = {INTERNAL_HEADER: INTERNAL_VALUE}


def is_internal(value: str | None) -> bool:
    """Whether a request's X-Engram-Internal header value marks it as engram's own."""
    return (value or "").strip() == INTERNAL_VALUE


def error_body(fmt: Format, status: int, message: str) -> dict[str, Any]:
    """An error in the provider's own shape, so the agent's SDK reports it sensibly.

    Used wherever engram answers in the upstream's place (the proxy's 502 and 413, the
    addon): one definition, so every door fails the same way.
    """
    if fmt is Format.ANTHROPIC:
        return {"type": "error", "error": {"type": "api_error", "message": message}}
    if fmt is Format.GEMINI:
        status_name = "INVALID_ARGUMENT" if status < 500 else "UNAVAILABLE"
        return {"error": {"code": status, "message": message, "status": status_name}}
    return {"error": {"message": message, "type": "engram_proxy_error", "code": status}}
