"""What the gate knows about each candidate memory: a few numbers per (query, memory).

A cosine alone cannot tell "the same words, a different question" from a real match
(on the labelled set the best single cosine threshold balanced at ~0.70 hit/silent),
so the gate looks at more evidence, each piece cheap (microseconds per candidate; the
texts are already in hand):

- meaning: the cosine, how far it stands above the next candidate (a clear winner is
  likelier relevant than one of many near-ties), how far below the best it is;
- words: saturated BM25, the share of the query's topic words the memory contains
  (plain and weighted by rarity), and the share of the memory's words the query has;
- exact identifiers: paths, commands, package and file names, flags, CamelCase and
  snake_case names typed in the query and present verbatim in the memory;
- priors: the memory's kind, and whether it belongs to this project, a directory above
  it, or is global; and how many topic words the query has at all (a two-word request
  gives every score less to go on).

gate_model.py turns them into a probability with coefficients fitted on labelled data.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from engram.recall.hybrid import BM25_HALF, STOPWORDS, Hit

_WORD = re.compile(r"\w+", re.UNICODE)
# Identifier-like tokens: something a person types exactly (a path, a command, a flag,
# a file or package name, a CamelCase or snake_case name, a version, a port).
_TOKEN = re.compile(r"[\w@$~./:+#-]+", re.UNICODE)
_IDENT_SHAPE = re.compile(
    r"[./:_#@$~]|--?[a-z]|\d[a-z]|[a-z]\d|[a-z][A-Z]|^[A-Z0-9]{2,}$|^\d{3,}$", re.UNICODE
)
_BACKTICK = re.compile(r"`([^`\n]{2,80})`")

# Requests for general knowledge ("explain X", "what is the difference between ...", "in
# general") rarely need a project note even when they name its topic; requests that
# point at the project ("here", "our", "this repo", "locally") usually do.
_GENERIC = re.compile(
    r"\b(explain\w*|what (?:is|are) (?:a|an|the difference)|what'?s (?:a|an|the difference)"
    r"|difference between|vs\.?|versus|in general|generally|how does|what (?:does|means)"
    r"|meaning of|syntax|formula|idiomatic|intuition|recommend\w*)\b",
    re.IGNORECASE,
)
_DEICTIC = re.compile(
    r"\b(here|our|ours|we|us|this (?:repo|repository|project|codebase|app|service|team)"
    r"|in the repo|locally|local|my (?:machine|laptop)|again|usual\w*)\b",
    re.IGNORECASE,
)

FEATURES = (
    "cos",
    "cos_gap_next",
    "cos_below_best",
    "bm25",
    "bm25_below_best",
    "qcov",
    "qcov_idf",
    "mcov",
    "ident",
    "few_terms",
    "generic",
    "deictic",
    "has_code",
    "scope_project",
    "scope_parent",
    "kind_preference",
    "kind_decision",
    "kind_procedure",
    "kind_gotcha",
)
VECTOR_FEATURES = frozenset({"cos", "cos_gap_next", "cos_below_best"})


def stem(word: str) -> str:
    """A light suffix stripper, enough to match "migrations"/"migration",
    "tests"/"testing", "failed"/"fails" (FTS5's porter stemmer does the same for BM25)."""
    w = word.lower()
    for suffix, keep in (("ies", 4), ("ing", 5), ("ed", 4), ("es", 4), ("s", 3)):
        if len(w) > keep and w.endswith(suffix) and not w.endswith("ss"):
            return w[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return w


def topic_words(text: str) -> dict[str, str]:
    """{stem: the first word that had it} for a text's topic words."""
    out: dict[str, str] = {}
    for w in _WORD.findall(text.lower()):
        if w not in STOPWORDS and len(w) > 1:
            out.setdefault(stem(w), w)
    return out


@functools.lru_cache(maxsize=32768)
def topic_stems(text: str) -> frozenset[str]:
    """A memory's topic stems; cached, since the same memories come up again and again
    (~25 us a memory uncached, against recall's few-millisecond budget)."""
    return frozenset(topic_words(text))


def identifiers(text: str) -> list[str]:
    """Identifier-like tokens of a text, lower-cased, longest first (no duplicates)."""
    found: dict[str, None] = {}
    for quoted in _BACKTICK.findall(text):
        token = quoted.strip().lower()
        if len(token) >= 3:
            found[token] = None
    for raw in _TOKEN.findall(text):
        token = raw.strip(".,:;#-/")
        if len(token) >= 3 and _IDENT_SHAPE.search(token):
            found[token.lower()] = None
    return sorted(found, key=len, reverse=True)[:24]


@dataclass(slots=True)
class QueryInfo:
    text: str
    stems: set[str]
    idents: list[str]
    idf: dict[str, float] = field(default_factory=dict)  # per stem; missing: 1.0
    generic: float = 0.0
    deictic: float = 0.0
    has_code: float = 0.0

    @property
    def n_terms(self) -> int:
        return len(self.stems)


def query_info(text: str, doc_freq: Callable[[str], int] | None = None, rows: int = 0) -> QueryInfo:
    """The query's topic stems and identifiers; with `doc_freq` (memories matching a
    term) and `rows` (memories in the store), an IDF per stem for weighted coverage."""
    words = topic_words(text)
    info = QueryInfo(text, set(words), identifiers(text))
    info.generic = min(len(_GENERIC.findall(text)), 2) / 2
    info.deictic = 1.0 if _DEICTIC.search(text) else 0.0
    info.has_code = 1.0 if "```" in text or "\n    " in text else 0.0
    if doc_freq is not None and rows > 0:
        for s, word in words.items():
            df = min(doc_freq(word), rows)
            info.idf[s] = math.log(1 + (rows - df + 0.5) / (df + 0.5))
    return info


def _scope_kind(scope: str, project: str | None) -> tuple[float, float]:
    if scope == "global":
        return 0.0, 0.0
    if project is None:
        # Recall without a project sees global memories only; a search across every
        # scope (`engram search`) treats each project memory as its own project's.
        return 1.0, 0.0
    if scope == project:
        return 1.0, 0.0
    return 0.0, 1.0  # a directory above the project (scopes_for): a parent repository


def features(
    query: QueryInfo,
    hits: Sequence[Hit],
    project: str | None,
    *,
    has_vectors: bool = True,
) -> np.ndarray:
    """One row of FEATURES per hit (hits carry their memory row: content, kind, scope)."""
    n = len(hits)
    out = np.zeros((n, len(FEATURES)), dtype=np.float64)
    if n == 0:
        return out
    col = {name: i for i, name in enumerate(FEATURES)}
    cos = np.array([max(h.cosine, 0.0) for h in hits]) if has_vectors else np.zeros(n)
    bm = np.array([h.bm25 / (h.bm25 + BM25_HALF) if h.bm25 > 0 else 0.0 for h in hits])
    if has_vectors:
        order = np.argsort(-cos, kind="stable")
        ranked = cos[order]
        nxt = np.append(ranked[1:], ranked[-1] if n > 1 else 0.0)
        gap = np.empty(n)
        gap[order] = ranked - nxt
        out[:, col["cos"]] = cos
        out[:, col["cos_gap_next"]] = gap
        out[:, col["cos_below_best"]] = cos.max() - cos
    out[:, col["bm25"]] = bm
    out[:, col["bm25_below_best"]] = bm.max() - bm
    total_idf = sum(query.idf.get(s, 1.0) for s in query.stems) or 1.0
    few = 1.0 / (1.0 + query.n_terms)
    out[:, col["few_terms"]] = few
    out[:, col["generic"]] = query.generic
    out[:, col["deictic"]] = query.deictic
    out[:, col["has_code"]] = query.has_code
    for i, hit in enumerate(hits):
        content = str(hit.row.get("content", ""))
        mstems = topic_stems(content)
        shared = query.stems & mstems
        out[i, col["qcov"]] = len(shared) / len(query.stems) if query.stems else 0.0
        out[i, col["qcov_idf"]] = sum(query.idf.get(s, 1.0) for s in shared) / total_idf
        out[i, col["mcov"]] = len(shared) / len(mstems) if mstems else 0.0
        lower = content.lower()
        matched = sum(1 for ident in query.idents if ident in lower)
        out[i, col["ident"]] = min(matched, 2) / 2
        out[i, col["scope_project"]], out[i, col["scope_parent"]] = _scope_kind(
            str(hit.row.get("scope", "global")), project
        )
        kind = str(hit.row.get("kind", "fact"))
        key = f"kind_{kind}"
        if key in col:
            out[i, col[key]] = 1.0
    return out
