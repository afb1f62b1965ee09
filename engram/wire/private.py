"""`<private>…</private>`: text the user marks as never to be kept.

The upstream request is never touched (the agent's model sees everything the user
typed); only engram's copy loses the marked text, before it is journaled, analysed,
used as a recall query or sent to MuninnDB. Each marked passage becomes `[private]`, so
the analyzer sees that something was withheld instead of reading a sentence with a
hole in it ("the staging password is [private]").

How malformed markup is read, always in favour of hiding more:

- Tags match in any case and with spaces or attributes: `<PRIVATE>`, `< private >`,
  `<private reason="client">`, `</ private >`.
- Nesting counts: `<private>a <private>b</private> c</private>` hides all of `a b c`.
- An opening tag that is never closed hides the rest of that text (a turn's text, one
  tool result, one tool call's arguments).
- A closing tag with no opening tag before it hides everything before it in that text.
- A tag split across content blocks of one message works: blocks are joined before
  this runs. A tag split across two messages does not span them; each message is read
  on its own, with the two rules above.

The same rules apply to every role's text, not only the user's: a model that quotes
the user ("ok: <private>the key is …") would otherwise leak it. What the model repeats
*without* the tags is caught by `scrub_echoes`: a passage the user hid is also replaced
wherever it appears verbatim in the turns that are stored — the whole passage and each
of its lines when they are specific enough (two words or more, or one word with a digit
or a symbol such as `hunter2` or `10.0.4.17`, or one long word), and each value-like
token of 6+ characters in it. Only the user's passages are used: a model quoting the
user usually cuts the quote short, and a fragment such as "staging" would then be
scrubbed from every later turn. A paraphrase cannot be caught; docs/privacy.md says so.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence

from engram.wire.model import Exchange, ToolCall, ToolResult, Turn

MARK = "[private]"

_TAG = re.compile(r"<\s*(/)?\s*private\b[^<>]{0,200}>", re.IGNORECASE)
_TOKEN = re.compile(r"[^\s\"'`,;()\[\]{}<>]+")
_VALUE_LIKE = re.compile(r"[\d\W_]")
MIN_VALUE = 6  # a token with a digit or symbol: hunter2, 10.0.4.17, acme-prod
MIN_WORD = 10  # a single plain word: "bluefalcon" yes, "staging" no


def strip_private(text: str) -> tuple[str, list[str]]:
    """`text` with every private passage replaced by `[private]`, and the passages."""
    if not text or "<" not in text or "private" not in text.lower():
        return text, []
    tags = list(_TAG.finditer(text))
    if not tags:
        return text, []
    out: list[str] = []
    passages: list[str] = []
    depth = 0
    visible_from = 0  # start of the text not yet emitted
    hidden_from = 0  # start of the current private passage
    for tag in tags:
        closing = tag.group(1) is not None
        if not closing:
            if depth == 0:
                out.append(text[visible_from : tag.start()])
                hidden_from = tag.end()
            depth += 1
        elif depth > 0:
            depth -= 1
            if depth == 0:
                passages.append(_TAG.sub(" ", text[hidden_from : tag.start()]))
                out.append(MARK)
                visible_from = tag.end()
        else:
            # A closer with nothing open: the opener was lost (another message, a
            # truncated paste). Everything before it may be what the user meant.
            passages.append(_TAG.sub(" ", text[: tag.start()]))
            out = [MARK]
            visible_from = tag.end()
    if depth > 0:
        passages.append(_TAG.sub(" ", text[hidden_from:]))
        out.append(MARK)
    else:
        out.append(text[visible_from:])
    return _tidy("".join(out)), [p for p in passages if p.strip()]


def _tidy(text: str) -> str:
    """Adjacent marks (a passage next to a stray closer's) read as one."""
    while MARK + MARK in text:
        text = text.replace(MARK + MARK, MARK)
    return text


def _strip_turn(turn: Turn, passages: list[str]) -> Turn:
    """One turn's text, tool-call arguments and tool results (thinking is never stored)."""
    text, found = strip_private(turn.text)
    passages.extend(found)
    changed = text is not turn.text
    calls = []
    for call in turn.tool_calls:
        args, found = strip_private(call.arguments)
        passages.extend(found)
        changed = changed or args is not call.arguments
        calls.append(ToolCall(call.id, call.name, args))
    results = []
    for result in turn.tool_results:
        content, found = strip_private(result.content)
        passages.extend(found)
        changed = changed or content is not result.content
        results.append(ToolResult(result.call_id, content, result.is_error))
    if not changed:
        return turn
    return dataclasses.replace(
        turn, text=text, tool_calls=tuple(calls), tool_results=tuple(results)
    )


def strip_turns(turns: Sequence[Turn]) -> tuple[list[Turn], list[str]]:
    """Every turn with its private passages replaced; the passages, in order."""
    passages: list[str] = []
    return [_strip_turn(t, passages) for t in turns], passages


def strip_texts(turns: Sequence[Turn]) -> list[Turn]:
    """Only the turns' own text, for the recall query (which reads nothing else): the
    request path skips scanning tool output, the bulk of a long conversation."""
    out = []
    for turn in turns:
        text, _ = strip_private(turn.text)
        out.append(turn if text is turn.text else dataclasses.replace(turn, text=text))
    return out


def strip_exchange(exchange: Exchange) -> list[str]:
    """Remove private passages from an exchange's turns and reply, in place; return the
    user's passages (what `scrub_echoes` looks for in the other turns).

    Per-turn and deterministic, so a turn hashes the same in every request that repeats
    it (conversation deltas stay exact). `scrub_echoes` is the cross-turn part.
    """
    users: list[str] = []
    others: list[str] = []
    turns = []
    for turn in exchange.turns:
        turns.append(_strip_turn(turn, users if turn.role == "user" else others))
    exchange.turns = turns
    if exchange.reply is not None:
        exchange.reply = _strip_turn(exchange.reply, others)
    return users


def echo_pattern(passages: Iterable[str]) -> re.Pattern[str] | None:
    """What to look for where a model repeats private text without its tags."""
    needles: set[str] = set()
    for passage in passages:
        whole = passage.strip()
        for piece in (whole, *whole.splitlines()):
            piece = piece.strip()
            if _specific(piece):
                needles.add(piece)
        for token in _TOKEN.findall(whole):
            if len(token) >= MIN_VALUE and _VALUE_LIKE.search(token):
                needles.add(token)
    needles.discard(MARK)
    if not needles:
        return None
    ordered = sorted(needles, key=len, reverse=True)  # the longest match wins
    return re.compile("|".join(re.escape(n) for n in ordered))


def _specific(piece: str) -> bool:
    """Specific enough to replace wherever it appears verbatim."""
    if len(piece.split()) >= 2:
        return len(piece) >= 6
    if _VALUE_LIKE.search(piece):
        return len(piece) >= 4
    return len(piece) >= MIN_WORD


def scrub_echoes(turns: Sequence[Turn], passages: Iterable[str]) -> list[Turn]:
    """`turns` with verbatim repeats of private passages replaced by `[private]`."""
    pattern = echo_pattern(passages)
    if pattern is None:
        return list(turns)

    def sub(text: str) -> str:
        return _tidy(pattern.sub(MARK, text)) if text else text

    return [
        dataclasses.replace(
            t,
            text=sub(t.text),
            tool_calls=tuple(ToolCall(c.id, c.name, sub(c.arguments)) for c in t.tool_calls),
            tool_results=tuple(
                ToolResult(r.call_id, sub(r.content), r.is_error) for r in t.tool_results
            ),
        )
        for t in turns
    ]
