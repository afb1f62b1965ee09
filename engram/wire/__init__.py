"""engram's view of LLM API traffic: formats, normalized exchanges, inject/strip, deltas.

Consumers import from here; the per-format modules are implementation detail.
"""

from __future__ import annotations

from engram.wire.delta import compute_delta, count_occurrences, has_substance, turn_fingerprint
from engram.wire.detect import detect_format
from engram.wire.injection import inject, strip
from engram.wire.model import (
    Exchange,
    Format,
    Kind,
    RawMessage,
    RawRequest,
    RawResponse,
    ToolCall,
    ToolResult,
    Turn,
    Usage,
)
from engram.wire.parse import conversation_key, parse_exchange
from engram.wire.text import project_from_system, user_words

__all__ = [
    "Exchange",
    "Format",
    "Kind",
    "RawMessage",
    "RawRequest",
    "RawResponse",
    "ToolCall",
    "ToolResult",
    "Turn",
    "Usage",
    "compute_delta",
    "conversation_key",
    "count_occurrences",
    "detect_format",
    "has_substance",
    "inject",
    "parse_exchange",
    "project_from_system",
    "strip",
    "turn_fingerprint",
    "user_words",
]
