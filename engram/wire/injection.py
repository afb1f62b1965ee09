"""Put engram's memory block into an outgoing request, and take it out again.

This runs on every proxied request (bodies of 75 KB and more), so results copy only the
dicts and lists along the path they change and share everything else with the input;
the input itself is never mutated. The request path fails open: a body of an unknown
format or an unexpected shape comes back unchanged, and nothing here raises.

The block always goes after the agent's own system text, because providers cache the
request prefix: the agent's blocks (and Anthropic `cache_control` marks) stay where they
were, and the block carries no cache mark of its own. Everything after the block (the
whole history) is cached behind it, so callers should keep its text the same across a
conversation's requests; a block that changes every request makes every request pay
for writing the history to the cache again.

Semantic equality, under which `strip(inject(b, f, t), f)` equals `b`, is equality of
`canonical(b, f)`: bodies equal as JSON after these rewrites, which the providers treat
as meaning the same request:

- Anthropic: a `system` that is absent, null, a blank string or `[]` is dropped; a
  string `system` s becomes `[{"type": "text", "text": s}]`.
- OpenAI Responses: an `instructions` that is absent, null or `""` is dropped.
- Gemini (the body, or `request` of a Code Assist body): a `systemInstruction` that is
  absent, null, a blank string, or an object with no key but `parts` and no parts, is
  dropped; a string s becomes `{"parts": [{"text": s}]}`; an object without `parts`
  gets `"parts": []`.
- OpenAI chat: no rewrite (the block is a message of its own).

A body whose own text already holds a complete delimited block is indistinguishable from
an injected one: strip removes that block too (which is what nested proxies need).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from engram.wire.block import has_block, remove_block, wrap_block
from engram.wire.model import Format
from engram.wire.splice import GEMINI_KEYS, Walked, dumps, is_system_message, splice

Body = dict[str, Any]


def inject(body: Body, fmt: Format, block_text: str) -> Body:
    """Return a copy of `body` carrying `block_text` as engram's delimited block.

    Blank `block_text` means there is nothing to inject, not an empty block.
    """
    return _on_dict(body, _injector(fmt, block_text))


def strip(body: Body, fmt: Format) -> Body:
    """Return a copy of `body` without engram's blocks, whether intact or embedded.

    Parts, blocks and messages that held nothing but a block are dropped; text that had
    a block spliced into it keeps the rest. A body without a block comes back equal.
    """
    return _on_dict(body, _STRIPPERS.get(fmt))


def inject_bytes(raw: bytes, fmt: Format, block_text: str, walked: Walked | None = None) -> bytes:
    """`inject` on a JSON body; `raw` comes back untouched if anything goes wrong.

    The block is spliced into the agent's own bytes (wire/splice.py: no re-serializing
    of a 75 KB body, 0.65 -> 0.23 ms hot, and no parsing at all given the recall step's
    `walked`); bodies the splice is not sure about take the parse-inject-serialize
    path, with the same meaning."""
    handler = _injector(fmt, block_text)
    if handler is not None and isinstance(raw, bytes):
        spliced = splice(raw, fmt, wrap_block(block_text), walked)
        if spliced is not None:
            return spliced
    return _on_bytes(raw, handler)


def strip_bytes(raw: bytes, fmt: Format) -> bytes:
    """`strip` on a JSON body; a body without a block is returned byte for byte."""
    # JSON between systems is UTF-8 (RFC 8259) and no serializer escapes ASCII letters,
    # so a body without the tag name cannot hold a block: skip parsing the common case.
    if not isinstance(raw, bytes | bytearray) or b"engram-memory" not in raw:
        return raw
    return _on_bytes(raw, _STRIPPERS.get(fmt))


Handler = Callable[[Body], Body | None]  # the new body, or None for "leave it as it is"


def _injector(fmt: Format, block_text: str) -> Handler | None:
    handler = _INJECTORS.get(fmt)
    if handler is None or not isinstance(block_text, str) or not block_text.strip():
        return None
    wrapped = wrap_block(block_text)
    return lambda body: handler(body, wrapped)


def _on_dict(body: Body, handler: Handler | None) -> Body:
    if not isinstance(body, dict):
        return body
    try:
        result = None if handler is None else handler(body)
    except Exception:  # fail open: a bug here must not break the agent's request
        result = None
    return dict(body) if result is None else result


def _on_bytes(raw: bytes, handler: Handler | None) -> bytes:
    try:
        body = json.loads(raw)
        result = handler(body) if handler is not None and isinstance(body, dict) else None
        return raw if result is None else _dump(result)
    except Exception:  # non-JSON, undecodable, too deep, unencodable: fail open
        return raw


def canonical(body: Any, fmt: Format) -> Any:
    """The form two bodies must share to be semantically equal (see the module doc)."""
    if not isinstance(body, dict):
        return body
    out = dict(body)
    if fmt is Format.ANTHROPIC:
        system = out.get("system")
        if system is None or system == [] or (isinstance(system, str) and not system.strip()):
            out.pop("system", None)
        elif isinstance(system, str):
            out["system"] = [{"type": "text", "text": system}]
    elif fmt is Format.OPENAI_RESPONSES:
        if out.get("instructions") in (None, ""):
            out.pop("instructions", None)
    elif fmt is Format.GEMINI:
        target, rebuild = _gemini_target(out)
        target = dict(target)
        for key in GEMINI_KEYS:
            si = target.get(key)
            if _gemini_blank(si):
                target.pop(key, None)
            elif isinstance(si, str):
                target[key] = {"parts": [{"text": si}]}
            elif isinstance(si, dict) and "parts" not in si:
                target[key] = {**si, "parts": []}
        out = rebuild(target)
    return out


def _inject_anthropic(body: Body, wrapped: str) -> Body | None:
    block = {"type": "text", "text": wrapped}
    system = body.get("system")
    if system is None or (isinstance(system, str) and not system.strip()):
        new_system: list[Any] = [block]
    elif isinstance(system, str):
        new_system = [{"type": "text", "text": system}, block]
    elif isinstance(system, list):
        new_system = [*system, block]
    else:
        return None
    return {**body, "system": new_system}


def _strip_anthropic(body: Body) -> Body | None:
    system = body.get("system")
    if isinstance(system, str):
        rest = _strip_string(system)
        return None if rest is None else _with(body, "system", rest if rest.strip() else None)
    blocks = _strip_texts(system) if isinstance(system, list) else None
    if blocks is None:
        return None
    if len(blocks) == 1 and _plain_text_block(blocks[0]):
        return _with(body, "system", blocks[0]["text"])
    return _with(body, "system", blocks or None)


def _plain_text_block(item: Any) -> bool:
    # Only such a block is interchangeable with a string `system`; a cache mark is not.
    plain = isinstance(item, dict) and item.keys() == {"type", "text"} and item["type"] == "text"
    return plain and isinstance(item["text"], str) and bool(item["text"].strip())


def _inject_chat(body: Body, wrapped: str) -> Body | None:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    at = 0
    while at < len(messages) and is_system_message(messages[at]):
        at += 1
    message = {"role": "system", "content": wrapped}
    return {**body, "messages": [*messages[:at], message, *messages[at:]]}


def _strip_chat(body: Body) -> Body | None:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    kept: list[Any] = []
    changed = False
    for message in messages:
        if is_system_message(message):
            content = message.get("content")
            rest: Any = None
            keep = False
            if isinstance(content, str):
                rest = _strip_string(content)
                keep = rest is not None and bool(rest.strip())
            elif isinstance(content, list):
                rest = _strip_texts(content)
                keep = bool(rest)
            if rest is not None:
                changed = True
                if keep:
                    kept.append({**message, "content": rest})
                continue
        kept.append(message)
    return {**body, "messages": kept} if changed else None


def _inject_responses(body: Body, wrapped: str) -> Body | None:
    instructions = body.get("instructions")
    if instructions is None or instructions == "":
        return {**body, "instructions": wrapped}
    if not isinstance(instructions, str):
        return None
    return {**body, "instructions": f"{instructions}\n\n{wrapped}"}


def _strip_responses(body: Body) -> Body | None:
    instructions = body.get("instructions")
    rest = _strip_string(instructions) if isinstance(instructions, str) else None
    if rest is None:
        return None
    return _with(body, "instructions", rest or None)


def _inject_gemini(body: Body, wrapped: str) -> Body | None:
    target, rebuild = _gemini_target(body)
    # The API reads proto JSON, which accepts snake_case too: extend what the agent sent.
    camel, snake = GEMINI_KEYS
    key = snake if snake in target and camel not in target else camel
    part = {"text": wrapped}
    si = target.get(key)
    if si is None or (isinstance(si, str) and not si.strip()):
        new_si: Any = {"parts": [part]}
    elif isinstance(si, str):
        new_si = {"parts": [{"text": si}, part]}
    elif isinstance(si, dict) and isinstance(si.get("parts", []), list):
        new_si = {**si, "parts": [*si.get("parts", []), part]}
    else:
        return None
    return rebuild({**target, key: new_si})


def _strip_gemini(body: Body) -> Body | None:
    target, rebuild = _gemini_target(body)
    changed = False
    for key in GEMINI_KEYS:
        si = target.get(key)
        new_si: Any = None
        if isinstance(si, str):
            rest = _strip_string(si)
            if rest is None:
                continue
            new_si = rest if rest.strip() else None
        elif isinstance(si, dict) and isinstance(si.get("parts"), list):
            parts = _strip_texts(si["parts"])
            if parts is None:
                continue
            new_si = {**si, "parts": parts}
            if _gemini_blank(new_si):
                new_si = None
        else:
            continue
        target = _with(target, key, new_si)
        changed = True
    return rebuild(target) if changed else None


def _gemini_target(body: Body) -> tuple[Body, Callable[[Body], Body]]:
    """The Gemini request inside `body`: Code Assist wraps it as `{"request": {...}}`."""
    inner = body.get("request")
    if "contents" not in body and isinstance(inner, dict):
        return inner, lambda new: {**body, "request": new}
    return body, lambda new: new


def _gemini_blank(si: Any) -> bool:
    if si is None or (isinstance(si, str) and not si.strip()):
        return True
    return isinstance(si, dict) and si.keys() <= {"parts"} and not si.get("parts")


def _strip_string(text: str) -> str | None:
    """The text without blocks, or None when it held none."""
    if not has_block(text):
        return None
    rest = remove_block(text)
    return None if rest == text else rest


def _strip_texts(items: list[Any]) -> list[Any] | None:
    """Blocks/parts without engram blocks; those that were nothing but one are dropped."""
    kept: list[Any] = []
    changed = False
    for item in items:
        text = item.get("text") if isinstance(item, dict) else None
        rest = _strip_string(text) if isinstance(text, str) else None
        if rest is not None:
            changed = True
            if rest.strip():
                kept.append({**item, "text": rest})
            continue
        kept.append(item)
    return kept if changed else None


def _with(body: Body, key: str, value: Any) -> Body:
    """A copy of `body` with `key` set, or removed when `value` is None."""
    out = dict(body)
    if value is None:
        out.pop(key, None)
    else:
        out[key] = value
    return out


def _dump(body: Body) -> bytes:
    return dumps(body).encode("utf-8")


_INJECTORS: dict[Format, Callable[[Body, str], Body | None]] = {
    Format.ANTHROPIC: _inject_anthropic,
    Format.OPENAI_CHAT: _inject_chat,
    Format.OPENAI_RESPONSES: _inject_responses,
    Format.GEMINI: _inject_gemini,
}
_STRIPPERS: dict[Format, Callable[[Body], Body | None]] = {
    Format.ANTHROPIC: _strip_anthropic,
    Format.OPENAI_CHAT: _strip_chat,
    Format.OPENAI_RESPONSES: _strip_responses,
    Format.GEMINI: _strip_gemini,
}
