"""The delimiter of engram's injected memory block, shared by inject, strip and parsers.

The block must be recognisable in any text it was put into, even after an agent or a
proxy trimmed whitespace around it, so removal is by its delimiters, not by position.
"""

from __future__ import annotations

import re

BLOCK_OPEN = '<engram-memory source="engram">'
BLOCK_CLOSE = "</engram-memory>"

# Non-greedy and DOTALL: several blocks (from repeated injections) are all removed.
# Whitespace that only served to separate the block from its neighbours goes with it.
_BLOCK_RE = re.compile(
    r"\n{0,2}[ \t]*" + re.escape(BLOCK_OPEN) + r".*?" + re.escape(BLOCK_CLOSE) + r"[ \t]*\n{0,2}",
    re.DOTALL,
)


def has_block(text: str) -> bool:
    return BLOCK_OPEN in text


def remove_block(text: str) -> str:
    """Return `text` without any engram block; text without one is returned as is."""
    if BLOCK_OPEN not in text:
        return text
    return _BLOCK_RE.sub(_join, text)


def _join(match: re.Match[str]) -> str:
    # Keep a single paragraph break where the block sat between two pieces of text.
    start, end = match.start(), match.end()
    text = match.string
    if start > 0 and end < len(text):
        return "\n\n" if match.group(0).count("\n") >= 2 else "\n" * match.group(0).count("\n")
    return ""


def wrap_block(body: str) -> str:
    """Wrap rendered memory text in the delimiters."""
    return f"{BLOCK_OPEN}\n{body.strip()}\n{BLOCK_CLOSE}"
