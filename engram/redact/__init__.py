"""Secret redaction: nothing engram stores or sends may contain a credential.

Captured agent traffic is full of secrets (keys pasted into prompts, `.env` files read by
tools, curl commands in logs), so every text goes through `redact` before it is stored or
shown to a model. Each secret becomes `[REDACTED:<type>]`, which keeps the text readable
("the agent used an OpenAI key here") without the value.

Three kinds of evidence, in `rules.py`, confirmed in `checks.py`:
- a vendor's format (`sk-ant-`, `ghp_`, `pypi-AgEI`, `AKIA`, ~130 formats of ~80 services);
- where a value stands: after a secret-named key (`DB_PASSWORD=`, `"apiKey":`, `--token`,
  netrc `password`), in a header, a URL's userinfo, a `mysql -p`/`curl -u` argument, under
  `data:` of a Kubernetes Secret;
- what the value looks like (`values.py`): random, or a word, a placeholder, code.

Precision matters as much as recall (a redacted commit SHA or `max_tokens` damages the
memories distilled from the traffic). Measured on the labelled corpus in
tests/data/redaction by `bench/redact.py`: see docs/privacy.md for the table.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

from engram.redact.keys import classify_key, is_secret_key, plausible
from engram.redact.rules import REDACTION_TYPES
from engram.redact.scan import Span, compiled, merge, scan
from engram.redact.values import is_placeholder

__all__ = [
    "REDACTION_TYPES",
    "Finding",
    "find_secrets",
    "is_placeholder",
    "is_secret_key",
    "redact",
    "redact_json",
    "redact_with_findings",
    "warm",
]


@dataclass(frozen=True, slots=True)
class Finding:
    """A redacted span of the original text. It never holds the secret, so it can be logged."""

    type: str
    start: int
    end: int


def _render(text: str, spans: list[Span]) -> tuple[str, list[int]]:
    """`text` with the spans replaced by markers, and where each marker starts in the output."""
    parts: list[str] = []
    starts: list[int] = []
    pos = size = 0
    for kind, start, end in spans:
        marker = f"[REDACTED:{kind}]"
        parts += (text[pos:start], marker)
        starts.append(size + start - pos)
        size += start - pos + len(marker)
        pos = end
    parts.append(text[pos:])
    return "".join(parts), starts


def _to_original(p: int, spans: list[Span], starts: list[int], end: bool) -> int:
    """Map a position in the rendered text back to the original (a marker maps to its span)."""
    i = bisect.bisect_right(starts, p - end) - 1
    if i < 0:
        return p
    kind, o_start, o_end = spans[i]
    r_end = starts[i] + len(kind) + 11  # len("[REDACTED:]") == 11
    if p < r_end + end:
        return o_end if end else o_start
    return p - r_end + o_end


def redact_with_findings(text: str) -> tuple[str, list[Finding]]:
    """`text` with every secret replaced by `[REDACTED:<type>]`, and what was replaced.

    Redacting can change how neighbouring text reads (a key whose type annotation held a
    token), so the output is scanned again until it is clean: the result is a fixpoint, which
    makes `redact` idempotent by construction. Text without secrets is scanned once; the
    rescan reads only around the markers, as far as any rule looks (a line, a value)."""
    spans = scan(text)
    out = text
    for _ in range(16):
        if not spans:
            break
        out, starts = _render(text, spans)
        around = [
            (s - _REACH, s + len(k) + 11 + _REACH)
            for (k, _, _), s in zip(spans, starts, strict=True)
        ]
        extra = scan(out, _union(around, len(out)))
        if not extra:
            break
        moved = [(k, _to_original(a, spans, starts, False), _to_original(b, spans, starts, True))
                 for k, a, b in extra]  # fmt: skip
        spans = merge(spans + moved)
    return out, [Finding(kind, start, end) for kind, start, end in spans]


# How far a redaction can change how other text reads: a command line is read 1,000
# characters back, a value 512 forward, a netrc entry 300 back.
_REACH = 1200


def _union(regions: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(regions):
        lo, hi = max(0, lo), min(size, hi)
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def warm() -> None:
    """Compile the patterns now (~70 ms, once per process) rather than on the first call:
    for a caller with a time budget, such as recall's gate on the request path."""
    compiled()


def find_secrets(text: str) -> list[Finding]:
    """Where the secrets in `text` are (spans in `text`) and of which type."""
    return redact_with_findings(text)[1]


def redact(text: str) -> str:
    """`text` with every secret replaced by `[REDACTED:<type>]`; idempotent."""
    return redact_with_findings(text)[0]


def _json_secret(key: str, value: str) -> bool:
    """Whether `value`, under the JSON key `key`, is a secret by the name of its key alone."""
    cls = classify_key(key)
    return cls is not None and plausible(value, cls, quoted=True, sep="=", key=key)


def redact_json(value: Any) -> Any:
    """A redacted copy of a decoded JSON value: every string (keys too) goes through `redact`,
    and a string under a secret-named key is replaced whole unless it is clearly no secret."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            new = redact_json(v)
            if isinstance(k, str) and isinstance(v, str) and new == v and _json_secret(k, v):
                new = "[REDACTED:secret-assignment]"
            out[redact(k) if isinstance(k, str) else k] = new
        return out
    if isinstance(value, list | tuple):
        return type(value)(redact_json(v) for v in value)
    return value
