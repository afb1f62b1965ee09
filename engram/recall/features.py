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
- what a tool is: "how do I install dependencies" asks about a package manager, and
  "we use pnpm" names one, with no word and little meaning in common (MiniLM: cosine
  0.20). TOOL_KINDS is a short glossary of well-known developer tools by job; `tool_kind`
  is 1 when the request asks about a job (without naming a tool for it) that the memory
  names a tool for. On tune/ (leave-one-author-out) it lifted R@5 0.961 -> 0.970 and the
  gate by ~0.01;
- priors: the memory's kind, and whether it belongs to this project, a directory above
  it, or is global; and how many topic words the query has at all (a two-word request
  gives every score less to go on);
- the request itself: `qprior`, a linear probe on the query's own embedding (fitted with
  the gate, gate_model.py) that says how likely a request of this kind is to need a
  note at all. "thanks, that worked", "what is a durable object" and "css grid center"
  look alike to it whatever the store holds; "install deps here", "which port" do not.
  It is what lifted the gate most in round 2 (leave-one-author-out on tune/: hit and
  silent 0.78/0.79 -> 0.82/0.82; no word list, so it is not fitted to phrases).

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

# A job a request can ask about -> (words that ask about it, tools that do it). General
# knowledge of common tools, not words picked from the labelled set; a tool missing here
# only loses this one feature.
TOOL_KINDS: dict[str, tuple[str, str]] = {
    "package manager": (
        "package packages manager dependency dependencies deps dep install installing "
        "lockfile library libraries",
        "npm pnpm yarn bun pip pipx uv poetry pdm conda pipenv cargo composer gem bundler "
        "bundle cocoapods pod carthage swiftpm spm maven gradle nuget brew homebrew apt",
    ),
    "test runner": (
        "test tests testing spec specs unit e2e coverage",
        "pytest jest vitest mocha jasmine playwright cypress rspec minitest phpunit pest "
        "junit kotest xctest nextest ctest",
    ),
    "linter": (
        "lint linter linting linters format formatter formatting style",
        "ruff black flake8 isort pylint eslint prettier biome stylelint ktlint spotless "
        "rustfmt clippy gofmt golangci rubocop swiftlint swiftformat clang-format",
    ),
    "type checker": (
        "type types typing typecheck annotations",
        "mypy pyright tsc typescript phpstan sorbet flow",
    ),
    "database": (
        "database databases db sql table tables",
        "postgres postgresql mysql mariadb sqlite mongodb redis snowflake bigquery redshift "
        "dynamodb cassandra",
    ),
    "container": (
        "container containers image images",
        "docker podman orbstack kubernetes k8s helm compose",
    ),
}
_ASKS = {kind: frozenset(asks.split()) for kind, (asks, _tools) in TOOL_KINDS.items()}
_TOOLS = {kind: frozenset(tools.split()) for kind, (_asks, tools) in TOOL_KINDS.items()}
_TOOL_WORD = re.compile(r"[\w.+-]+", re.UNICODE)


def _tool_words(text: str) -> set[str]:
    return {w.strip(".-+") for w in _TOOL_WORD.findall(text.lower())}


@functools.lru_cache(maxsize=32768)
def tools_named(text: str) -> frozenset[str]:
    """The jobs (TOOL_KINDS) a text names a tool for; cached per memory like topic_stems."""
    words = _tool_words(text)
    return frozenset(kind for kind, tools in _TOOLS.items() if words & tools)


def jobs_asked(text: str) -> frozenset[str]:
    """The jobs a request asks about without naming a tool for them itself."""
    words = _tool_words(text)
    return frozenset(
        kind for kind, asks in _ASKS.items() if words & asks and not words & _TOOLS[kind]
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
    "qprior",
    "tool_kind",
)
VECTOR_FEATURES = frozenset({"cos", "cos_gap_next", "cos_below_best", "qprior"})


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
    jobs: frozenset[str] = frozenset()  # jobs_asked

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
    info.jobs = jobs_asked(text)
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
    prior: float = 0.0,
) -> np.ndarray:
    """One row of FEATURES per hit (hits carry their memory row: content, kind, scope);
    `prior` is the gate model's query probe (GateModel.query_prior), the same for all."""
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
        out[:, col["qprior"]] = prior
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
        if query.jobs and query.jobs & tools_named(content):
            out[i, col["tool_kind"]] = 1.0
        kind = str(hit.row.get("kind", "fact"))
        key = f"kind_{kind}"
        if key in col:
            out[i, col[key]] = 1.0
    return out
