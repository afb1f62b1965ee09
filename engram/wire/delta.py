"""Conversation deltas: which turns of a request the analyzer has not seen yet.

Every request of an agent repeats the whole history, so analysing requests as they come
would feed each turn to the analyzer once per later request (cost growing with the
square of the conversation). Instead each turn gets a content fingerprint, and a
conversation keeps a count per fingerprint of how often it has already been emitted.

Counting occurrences instead of keeping a set is what lets an identical short turn
("yes", "continue") be new the second time: its second occurrence in the history is
new while its first is not. Taking the max of old and new counts (never replacing
them) makes the scheme robust to history rewrites and to requests of one conversation
arriving with different histories: nothing already emitted is emitted again.

Known limits:

- After a history rewrite that drops turns (compaction), a turn identical to a dropped
  one is missed until its count in the new history exceeds the old count: a "continue"
  typed after compaction is lost if "continue" was emitted before. Turns with
  distinctive content (nearly all assistant turns, tool results, which carry their call
  id) are not affected.
- A user who repeats an earlier message verbatim in a rewritten history is not seen.
- A turn that an agent rewrites in later requests (a truncated reply completed, old tool
  output replaced by a placeholder, reminders removed) is new once more in its new form.
- Stateful requests that do not repeat the history (Responses `previous_response_id`)
  make a verbatim repeat of an earlier message look old; such requests should be given
  an empty `seen`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from engram.wire.model import ToolCall, Turn
from engram.wire.text import identity_text

# Providers name roles differently; a parser that passes one through must not make the
# reply and the same message in the next request's history look different.
_ROLE_ALIASES = {"model": "assistant", "developer": "system", "function": "tool"}


def turn_fingerprint(turn: Turn) -> str:
    """A 32-hex-digit hash identifying `turn` across requests of one conversation.

    It covers the role, the text, the tool calls and the tool results, each normalised
    so that what agents change when they echo a message back, and what differs between
    the doors a turn arrives through (the proxy sees a request, a transcript keeps the
    agent's own record), does not count: whitespace, an injected engram block, harness
    markup (`<system-reminder>`, Claude Code's slash-command and task-notification tags,
    Codex's `<environment_context>`), and for tool calls the JSON formatting of the
    arguments. It leaves out `thinking` (agents edit
    or drop it in later requests) and tool-call ids (the id of a call in a response is
    not always the id the agent sends back: some agents and gateways re-number them).
    Tool results keep their call id: they only ever come from requests, where ids are
    stable, and the id keeps identical outputs ("ok") of different calls apart.
    """
    role = turn.role.strip().lower()
    payload = [
        _ROLE_ALIASES.get(role, role),
        _normalize_text(turn.text),
        [_call_key(call) for call in turn.tool_calls],
        [[r.call_id, _normalize_text(r.content), bool(r.is_error)] for r in turn.tool_results],
    ]
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    # surrogatepass: a lone surrogate from a malformed body must not make hashing raise.
    return hashlib.blake2b(data.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def compute_delta(
    seen: Mapping[str, int],
    turns: Sequence[Turn],
    prior: dict[str, int] | None = None,
) -> tuple[list[Turn], dict[str, int]]:
    """Return the turns of `turns` not emitted before, in order, and the updated counts.

    `turns` is one exchange's history followed by its reply (if any); `seen` maps each
    fingerprint to the number of times it has been emitted for this conversation (empty
    for a new one). A turn is new when its occurrence number among `turns` exceeds that
    count. `seen` is not modified; persist the returned counts with the analysed
    exchange, in the same transaction, so that a crash neither loses nor repeats turns.

    A source that reads a conversation piece by piece (a transcript) passes only the
    turns it has not passed before, and in `prior` the occurrence counts of everything
    before them; `prior` is updated in place, so the next piece continues the count.
    The result is the same as passing the whole history each time, without hashing it
    again for every piece.
    """
    occurrences: dict[str, int] = prior if prior is not None else {}
    new: list[Turn] = []
    for turn in turns:
        fingerprint = turn_fingerprint(turn)
        count = occurrences.get(fingerprint, 0) + 1
        occurrences[fingerprint] = count
        if count > seen.get(fingerprint, 0):
            new.append(turn)
    updated = dict(seen)
    for fingerprint, count in occurrences.items():
        if count > updated.get(fingerprint, 0):
            updated[fingerprint] = count
    return new, updated


def count_occurrences(prior: dict[str, int], turns: Sequence[Turn]) -> None:
    """Advance `prior` (see `compute_delta`) past turns that were recorded before."""
    for turn in turns:
        fingerprint = turn_fingerprint(turn)
        prior[fingerprint] = prior.get(fingerprint, 0) + 1


def has_substance(turn: Turn) -> bool:
    """Whether a turn carries conversation: words, a tool call or a tool result.

    System turns and user turns made only of harness markup are context an agent adds
    on one door and not on another; an exchange whose only new turns are such context
    has nothing to analyse.
    """
    if turn.role.strip().lower() in ("system", "developer"):
        return False
    return bool(turn.tool_calls or turn.tool_results or identity_text(turn.text))


def _normalize_text(text: str) -> str:
    return identity_text(text) if text else ""


def _call_key(call: ToolCall) -> list[str]:
    return [call.name, _canonical_arguments(call.arguments)]


def _canonical_arguments(arguments: str) -> str:
    """The arguments as sorted, compact JSON; raw text if they are not JSON.

    An agent re-serialises the arguments it got before sending them back (JavaScript
    agents write `1.0` as `1`), and a streamed call without arguments arrives as "".
    """
    if isinstance(arguments, str) and not arguments.strip():
        return "{}"
    try:  # not a str only if a parser broke the contract: hash it anyway
        value = json.loads(arguments) if isinstance(arguments, str) else arguments
        value = _integral_floats_as_ints(value)
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    except (ValueError, TypeError, RecursionError):
        return str(arguments).strip()


def _integral_floats_as_ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral_floats_as_ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral_floats_as_ints(v) for v in value]
    return value
