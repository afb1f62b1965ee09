"""The delimiter of engram's injected memory block, shared by inject, strip and parsers.

The block must be recognisable in any text it was put into, even after an agent or a
proxy trimmed whitespace around it, so removal is by its delimiters, not by position.
"""

from __future__ import annotations

import re

BLOCK_OPEN = '<engram-memory source="engram">'
BLOCK_CLOSE = "</engram-memory>"

# Memory text can legitimately mention the delimiters (a session spent working on engram
# itself), and a literal closer inside a block would end it early and leak the rest into
# stored text; a look-alike (`</ENGRAM-MEMORY>`, `< /engram-memory >`) would not fool
# `remove_block`, but it can fool the model into reading the rest as outside the block.
# `wrap_block` therefore defuses every case and spacing of either tag in the body.
_TAG = re.compile(r"<(?=\s*/?\s*engram-memory)", re.IGNORECASE)


def has_block(text: str) -> bool:
    return BLOCK_OPEN in text


def remove_block(text: str) -> str:
    """Return `text` without any engram block; text without one is returned as is.

    A block is an opener followed by the nearest closer, taking the opener closest to
    that closer: a stray unclosed opener in the surrounding text (someone quoting the
    tag) is not ours and must not swallow the text after it. Blocks separated only by
    whitespace (repeated injections) go as one. Up to two newlines and the spaces/tabs
    on each side go with a block; where it sat between two pieces of text, a paragraph
    break (or the single newline that was there) is kept.
    """
    if BLOCK_OPEN not in text:
        return text
    spans = _merged_spans(text)
    if not spans:
        return text
    pieces: list[str] = []
    cursor = 0
    for start, end in spans:
        start = _extend_left(text, start, cursor)
        end = _extend_right(text, end)
        pieces.append(text[cursor:start])
        if start > 0 and end < len(text):
            newlines = text.count("\n", start, end)
            pieces.append("\n\n" if newlines >= 2 else "\n" * newlines)
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces)


def _merged_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    pos = 0
    while True:
        start = text.find(BLOCK_OPEN, pos)
        if start < 0:
            break
        close = text.find(BLOCK_CLOSE, start + len(BLOCK_OPEN))
        if close < 0:
            break
        start = text.rfind(BLOCK_OPEN, start, close)
        end = close + len(BLOCK_CLOSE)
        if spans and not text[spans[-1][1] : start].strip():
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
        pos = end
    return spans


def _extend_left(text: str, start: int, floor: int) -> int:
    while start > floor and text[start - 1] in " \t":
        start -= 1
    for _ in range(2):
        if start > floor and text[start - 1] == "\n":
            start -= 1
    return start


def _extend_right(text: str, end: int) -> int:
    # Never reaches into the next block: blocks separated by whitespace were merged.
    while end < len(text) and text[end] in " \t":
        end += 1
    for _ in range(2):
        if end < len(text) and text[end] == "\n":
            end += 1
    return end


def wrap_block(body: str) -> str:
    """Wrap rendered memory text in the delimiters."""
    body = _TAG.sub("&lt;", body.strip())
    return f"{BLOCK_OPEN}\n{body}\n{BLOCK_CLOSE}"
