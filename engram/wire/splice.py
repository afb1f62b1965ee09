"""Inject the memory block into the agent's own request bytes, without re-serializing.

`injection.inject_bytes` used to parse the whole body, add the block to the dict and
serialize all of it again: for a 72 KB Claude Code request 0.18 ms to parse and 0.45 ms
to serialize (hot, one thread; ~5x that on a proxy idle between requests, measured),
on every request that gets memory, tool loops included. Here the body is walked once
at the top level with the json module's C scanner (each value parsed where it stands,
its offsets kept), and the block goes in as a splice at a known offset: the bytes
before and after it are the agent's, unchanged (its spacing, key order, escapes and
number spelling included).

The result means the same as `inject(json.loads(raw))`: equal after `json.loads`
(tests/test_wire_inject.py checks this on generated bodies in several serializations).
Wherever that is not certain, `splice` answers None and the caller takes the old path:
a body that is not plain UTF-8 starting with `{`, trailing data, NaN/Infinity, escaped
surrogates (a lone one cannot be encoded; the old path fails open on it), a shape an
injector would refuse. A duplicated key is spliced at its last occurrence, the one
`json.loads` keeps.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from json.decoder import scanstring  # type: ignore[attr-defined]
from typing import Any

from engram.wire.model import Format

_WS = re.compile(r"[ \t\n\r]*")
# `\ud800`-`\udfff` escapes: a lone one cannot be encoded as UTF-8, and the old path
# knows what to do with it (fail open); a pair (an escaped emoji) only costs that path.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
# Shared with injection.py (the same rules, parsed and spliced).
GEMINI_KEYS = ("systemInstruction", "system_instruction")
SYSTEM_ROLES = frozenset({"system", "developer"})


class _Unsure(Exception):
    """The walk met something `json.loads` might read differently: take the old path."""


def _refuse(name: str) -> Any:
    raise _Unsure(name)


_DECODER = json.JSONDecoder(parse_constant=_refuse)  # NaN, Infinity, -Infinity
# (value, index past it) of the JSON value at an index: the C scanner json.loads uses
_scan: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]


def _skip(text: str, at: int) -> int:
    """The index of the first non-whitespace character at or after `at`."""
    return _WS.match(text, at).end()  # type: ignore[union-attr]  # `*` always matches


class _Obj:
    """A JSON object as walked: its value, each key's value span (the last occurrence),
    where its closing brace is, and walks of the member objects asked for."""

    __slots__ = ("close", "inner", "spans", "value")

    def __init__(self) -> None:
        self.value: dict[str, Any] = {}
        self.spans: dict[str, tuple[int, int]] = {}
        self.inner: dict[str, _Obj] = {}
        self.close = 0  # the index of its "}"


def _walk(text: str, at: int, descend: tuple[str, ...] = ()) -> tuple[_Obj, int]:
    """The object starting at `text[at]` ("{"), and the index just past it. Members named
    in `descend` that are objects are walked too (their `_Obj` in `inner`)."""
    obj = _Obj()
    at = _skip(text, at + 1)
    if text[at] == "}":
        obj.close = at
        return obj, at + 1
    while True:
        if text[at] != '"':
            raise _Unsure("key")
        key, at = scanstring(text, at + 1, True)
        at = _skip(text, at)
        if text[at] != ":":
            raise _Unsure("colon")
        start = _skip(text, at + 1)
        if key in descend and text[start] == "{":
            inner, end = _walk(text, start)
            obj.inner[key] = inner
            value: Any = inner.value
        else:
            obj.inner.pop(key, None)
            value, end = _scan(text, start)
        obj.value[key] = value
        obj.spans[key] = (start, end)
        at = _skip(text, end)
        if text[at] == ",":
            at = _skip(text, at + 1)
        elif text[at] == "}":
            obj.close = at
            return obj, at + 1
        else:
            raise _Unsure("separator")


def dumps(value: Any) -> str:
    """Compact JSON as engram writes it into bodies. allow_nan=False: a value Python
    parsed leniently (NaN, 1e400) must not go out as invalid JSON; the ValueError sends
    the caller down the fail-open path instead."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class _Edit:
    """One replacement of `text[start:end]` (an insertion when they are equal)."""

    __slots__ = ("end", "new", "start")

    def __init__(self, start: int, end: int, new: str) -> None:
        self.start, self.end, self.new = start, end, new


def _set(obj: _Obj, key: str, new: str) -> _Edit:
    """Replace `key`'s value with the JSON text `new`, or add the member at the end."""
    if key in obj.spans:
        return _Edit(*obj.spans[key], new)
    member = f"{dumps(key)}:{new}"
    return _Edit(obj.close, obj.close, f",{member}" if obj.value else member)


def _append(text: str, span: tuple[int, int], items: list[Any], new: str) -> _Edit:
    """Add the JSON text `new` as the last element of the array at `span`."""
    close = span[1] - 1  # its "]"
    if not items:
        return _Edit(span[0], span[1], f"[{new}]")
    return _Edit(close, close, f",{new}")


class Walked:
    """A body's top level, walked once (`walk`): its parsed value for the parser and
    each member's offsets for `splice`, so the request path parses it only once."""

    __slots__ = ("raw", "text", "top")

    def __init__(self, raw: bytes, text: str, top: _Obj) -> None:
        self.raw, self.text, self.top = raw, text, top

    @property
    def value(self) -> dict[str, Any]:
        """What `json.loads(raw)` returns (the walk refuses anything where it might not)."""
        return self.top.value


def walk(raw: bytes, fmt: Format) -> Walked | None:
    """`raw` walked for `splice`, or None where `json.loads` must decide (see the module
    docstring): not UTF-8, not an object, trailing data, NaN, escaped surrogates."""
    if not isinstance(raw, bytes):
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if _SURROGATE_ESCAPE.search(text):
        return None
    try:
        start = _skip(text, 0)
        if text[start] != "{":
            return None
        top, end = _walk(text, start, ("request",) if fmt is Format.GEMINI else ())
        if _skip(text, end) != len(text):
            return None  # json.loads refuses trailing data
    except (_Unsure, ValueError, IndexError, StopIteration, RecursionError):
        return None
    return Walked(raw, text, top)


def splice(raw: bytes, fmt: Format, wrapped: str, walked: Walked | None = None) -> bytes | None:
    """`raw` with the block `wrapped` spliced in where `inject` puts it, or None when
    the old path must decide. `walked`: `walk(raw, fmt)` done before (by the recall
    step, whose parser read its value); walked again when it is of other bytes."""
    w = walked if walked is not None and walked.raw is raw else walk(raw, fmt)
    editor = _EDITORS.get(fmt)
    if w is None or editor is None:
        return None
    try:
        edit = editor(w.text, w.top, wrapped)
        if edit is None:
            return None
        if len(w.text) == len(raw):  # ASCII: character offsets are byte offsets
            start, end = edit.start, edit.end
        else:  # only the prefix and the replaced span are encoded, not the whole body
            start = len(w.text[: edit.start].encode("utf-8"))
            end = start + len(w.text[edit.start : edit.end].encode("utf-8"))
        return raw[:start] + edit.new.encode("utf-8") + raw[end:]
    except (_Unsure, ValueError, LookupError, StopIteration, RecursionError, UnicodeEncodeError):
        return None


def _anthropic(text: str, top: _Obj, wrapped: str) -> _Edit | None:
    block = dumps({"type": "text", "text": wrapped})
    system = top.value.get("system")
    if system is None or (isinstance(system, str) and not system.strip()):
        return _set(top, "system", f"[{block}]")
    if isinstance(system, str):
        start, end = top.spans["system"]
        return _Edit(start, end, f'[{{"type":"text","text":{text[start:end]}}},{block}]')
    if isinstance(system, list):
        return _append(text, top.spans["system"], system, block)
    return None


def _chat(text: str, top: _Obj, wrapped: str) -> _Edit | None:
    messages = top.value.get("messages")
    if not isinstance(messages, list):
        return None
    at = 0
    while at < len(messages) and is_system_message(messages[at]):
        at += 1
    message = dumps({"role": "system", "content": wrapped})
    span = top.spans["messages"]
    if at == len(messages):
        return _append(text, span, messages, message)
    # the start of element `at`: skip the `at` system messages before it
    pos = _skip(text, span[0] + 1)
    for _ in range(at):
        _value, pos = _scan(text, pos)
        pos = _skip(text, pos)
        if text[pos] != ",":
            raise _Unsure("array")
        pos = _skip(text, pos + 1)
    return _Edit(pos, pos, f"{message},")


def is_system_message(message: Any) -> bool:
    return isinstance(message, dict) and message.get("role") in SYSTEM_ROLES


def _responses(text: str, top: _Obj, wrapped: str) -> _Edit | None:
    instructions = top.value.get("instructions")
    if instructions is None or instructions == "":
        return _set(top, "instructions", dumps(wrapped))
    if not isinstance(instructions, str):
        return None
    return _set(top, "instructions", dumps(f"{instructions}\n\n{wrapped}"))


def _gemini(text: str, top: _Obj, wrapped: str) -> _Edit | None:
    target = top
    if "contents" not in top.value and isinstance(top.value.get("request"), dict):
        target = top.inner["request"]  # Code Assist wraps the request
    camel, snake = GEMINI_KEYS
    key = snake if snake in target.value and camel not in target.value else camel
    part = dumps({"text": wrapped})
    si = target.value.get(key)
    if si is None or (isinstance(si, str) and not si.strip()):
        return _set(target, key, f'{{"parts":[{part}]}}')
    if isinstance(si, str):
        start, end = target.spans[key]
        return _Edit(start, end, f'{{"parts":[{{"text":{text[start:end]}}},{part}]}}')
    if not isinstance(si, dict) or not isinstance(si.get("parts", []), list):
        return None
    inner, _end = _walk(text, target.spans[key][0])
    if "parts" not in inner.value:
        return _set(inner, "parts", f"[{part}]")
    return _append(text, inner.spans["parts"], inner.value["parts"], part)


_EDITORS: dict[Format, Callable[[str, _Obj, str], _Edit | None]] = {
    Format.ANTHROPIC: _anthropic,
    Format.OPENAI_CHAT: _chat,
    Format.OPENAI_RESPONSES: _responses,
    Format.GEMINI: _gemini,
}
