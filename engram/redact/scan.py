"""Running the passes over a text and merging what they find.

Each pass (`rules.Pass`) scans the whole text; a candidate its check rejects gives way to
the later alternatives of the same pass at that position, then the scan moves one character
on, so a rejected candidate never hides a secret inside it. Overlapping finds merge under
the most telling type: a vendor's (`anthropic`) over where it stood (`secret-assignment`).
"""

from __future__ import annotations

import functools
import re

from engram.redact.checks import CONTEXT_CHECKS, judge, k8s_document
from engram.redact.keys import Candidate
from engram.redact.rules import Pass, compile_rules

Span = tuple[str, int, int]


@functools.cache
def compiled() -> list[Pass]:
    """The patterns, compiled on first use (~70 ms: kept off the CLI's cold start)."""
    return compile_rules()


class _Original:
    """A match in the scanned copy of the text (base64 interiors blanked), read from the
    original: positions are the same."""

    __slots__ = ("m", "string")  # `string` is the original text

    def __init__(self, m: re.Match[str], text: str) -> None:
        self.m, self.string = m, text

    def start(self, group: int = 0, /) -> int:
        return self.m.start(group)

    def end(self, group: int = 0, /) -> int:
        return self.m.end(group)

    def span(self, group: int = 0, /) -> tuple[int, int]:
        return self.m.span(group)

    @property
    def regs(self) -> tuple[tuple[int, int], ...]:
        return self.m.regs


# Long base64 runs (an image in a notebook, a blob in tool output) would stop the scan at
# nearly every letter (~10 MB/s): their interior is blanked in the scanned copy (~100 MB/s).
# The first _KEEP characters stay, so a token that starts the run is still recognised, and a
# secret that reaches the blanked part is extended to the run's end.
_RUN_HINT = re.compile(r"[+/](?=[A-Za-z0-9+/]{64})")
_RUN_BACK = re.compile(r"[A-Za-z0-9+/=_\-]+\Z")
_RUN = re.compile(r"[A-Za-z0-9+/=_\-]*")
_KEEP, _MIN_RUN = 256, 1024


def _long_runs(text: str) -> list[tuple[int, int]]:
    runs = []
    pos = 0
    while (hint := _RUN_HINT.search(text, pos)) is not None:
        back = _RUN_BACK.search(text, max(0, hint.start() - _KEEP), hint.start())
        start = back.start() if back else hint.start()
        end = hint.start()
        if (run := _RUN.match(text, hint.start())) is not None:
            end = run.end()
        if end - start >= _MIN_RUN:
            runs.append((start, end))
        pos = max(end, hint.start() + 1)
    return runs


def _blank(text: str, runs: list[tuple[int, int]]) -> str:
    parts: list[str] = []
    pos = 0
    for start, end in runs:
        parts += (text[pos : start + _KEEP], " " * (end - start - _KEEP))
        pos = end
    parts.append(text[pos:])
    return "".join(parts)


def candidates(text: str, regions: list[tuple[int, int]] | None = None) -> list[Span]:
    """Every confirmed secret span in `text` (or starting in one of `regions`), unordered,
    possibly overlapping.

    Each pass scans the whole text, so a vendor's token inside an assigned value, or a token
    between a key and its value, is found by its own pass; `merge` keeps the telling type."""
    runs = _long_runs(text)
    subject = _blank(text, runs) if runs else text
    found: list[Span] = []
    for lo, hi in regions if regions is not None else [(0, len(text))]:
        found += _in_region(text, subject, runs, lo, hi)
    if runs:  # a secret that reaches a blanked interior runs to the end of its base64 run
        ends = {start + _KEEP: end for start, end in runs}
        found = [(kind, start, ends.get(end, end)) for kind, start, end in found]
    return found


def _in_region(
    text: str, subject: str, runs: list[tuple[int, int]], lo: int, hi: int
) -> list[Span]:
    # Candidates starting in [lo, hi) are searched for a little past `hi`, then matched
    # again without a limit: a token or a block may run on past the region.
    limit = min(len(subject), hi + 1024)

    def read(m: re.Match[str]) -> Candidate:
        return _Original(m, text) if runs else m

    found: list[Span] = []
    for scan in compiled():
        search, markers = scan.pattern.search, scan.markers
        at, k8s_until = lo, 0
        while (m := search(subject, at, limit)) is not None and m.start() < hi:
            if limit < len(subject):
                m = scan.pattern.match(subject, m.start()) or m
            rule, groups = markers[m.lastindex or 0]
            if rule.check == "k8s":  # one `kind: Secret` per document is enough
                if m.start() < k8s_until:
                    at = m.end()
                    continue
                k8s_until = k8s_document(text, m.start())[1]
            hits = judge(read(m), rule, groups)
            if hits is None:  # the rules after this one in the alternation may still match
                for later, single, later_groups in scan.after(m.lastindex or 0):
                    again = single.match(subject, m.start())
                    if again is not None and (hits := judge(read(again), later, later_groups)):
                        m, rule = again, later
                        break
            if not hits:
                at = m.start() + 1  # a rejected candidate must not hide a secret inside it
                continue
            found += hits
            if rule.check in CONTEXT_CHECKS:  # go on from the value: it may be a token too
                at = max(m.start() + 1, min(start for _, start, _ in hits))
            else:
                at = max(m.end(), m.start() + 1)
    return found


# Context types say where a secret was, vendor types what it is: on overlap the vendor wins
# (`api_key="sk-ant-..."` is `anthropic`, `Bearer ghp_...` is `github`).
_RANK = {"secret-assignment": 0, "kubernetes-secret": 1, "basic-auth": 2, "bearer": 2}
_RANK["url-credentials"] = 2


def merge(spans: list[Span]) -> list[Span]:
    """Sorted, non-overlapping spans; overlapping ones merge under the most specific type."""
    merged: list[Span] = []
    for kind, start, end in sorted(spans, key=lambda s: (s[1], -s[2])):
        if start >= end:
            continue
        if merged and start < merged[-1][2]:
            k, s, e = merged[-1]
            merged[-1] = (kind if _RANK.get(kind, 3) > _RANK.get(k, 3) else k, s, max(e, end))
        else:
            merged.append((kind, start, end))
    return merged


def scan(text: str, regions: list[tuple[int, int]] | None = None) -> list[Span]:
    """The secrets in `text` (or starting in `regions`): sorted, non-overlapping spans."""
    return merge(candidates(text, regions))
