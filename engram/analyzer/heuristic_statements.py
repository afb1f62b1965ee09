"""Broader sentence rules of the heuristic analyzer, for users who state facts plainly.

The rules in `heuristic_rules` wait for cue words ("always", "we use", "remember").
Measured on conversations written in other voices (bench/data/analyzer_quality: terse
one-liners, corrections phrased as questions, non-native English, long tool output),
they found 4 of 38 expected facts on the tuning half: people mostly say "db is on 5433
not 5432", "we dont do down migrations", "no emojis. ever", "when u show diffs, unified
format". These rules read such statements. Each one still needs evidence that the
sentence is about something concrete (a tool, file, flag, port, path or version) or is
a standing rule by its form, and every hit passes `heuristic_rules.acceptable` and the
analyzer's validation afterwards.
"""

from __future__ import annotations

import re

from engram.analyzer.heuristic_rules import Hit
from engram.analyzer.heuristic_rules import _hit as rule_hit
from engram.analyzer.heuristic_words import (
    CONCRETE,
    HAPPENS_TO_US,
    NOT_IMPERATIVE,
    PRONOUN,
    TASK_SUBJECT,
    TOOL_NAME,
    TRANSIENT,
    UNSURE_TAIL,
    VAGUE_START,
    bug_report,
)
from engram.analyzer.validate import DEICTIC_START

_I = re.IGNORECASE

# Non-native word orders normalised before matching ("please to use always yarn").
_ESL = (
    (re.compile(r"\bplease to\b", _I), "please"),
    (re.compile(r"\b(use|run|write|put|do) always\b", _I), r"always \1"),
)

# "X, not Y" / "X instead of Y" / "X rather than Y" with something named on the X side.
_CONTRAST = re.compile(
    r"^(?P<x>(?P<a>[^,;]{3,80}?),?\s+(?:not|instead of|rather than)\s+(?P<b>[^,;]{1,60}))$", _I
)
# "redis is not running", "it's not started": "not" negates a verb, contrasting nothing.
_NEGATED_VERB = re.compile(
    r"\b(?:is|are|was|were|be|do|does|did|has|have|had|can|could|will|would|should|must"
    r"|it'?s|that'?s|i'?m|we'?re|they'?re|isn'?t|aren'?t)$",
    _I,
)
# "we dont do down migrations", "we only block on errors", "we never push on fridays".
_WE_RULE = re.compile(
    r"^(?P<x>(?:here,?\s+|in this (?:repo|project|codebase),?\s+)?we (?:don'?t|dont|do not|never"
    r"|only|always|usually|generally|normally)\s+(?!(?:know|have|need|want|think|see|get|care"
    rf"|mind|remember|understand)\b|{HAPPENS_TO_US})(?P<obj>\w.{{2,100}}))$",
    _I,
)
# "no emojis", "no summaries at the end": a standing prohibition.
_NO_THING = re.compile(r"^(?P<x>no (?P<obj>[a-z][\w-]*s\b.{0,60}))$", _I)
_NOT_A_RULE = re.compile(
    r"^no (?:worries|problems?|ideas?|lucks?|needs?|rush|ways?|thanks|longer|more|ones?|matters?"
    r"|clues?|changes|differences|errors|issues|tests|results|files|words|comments?)\b",
    _I,
)
# "when u show diffs, unified format", "whenever you add a metric, also add it to X".
_WHEN_YOU = re.compile(
    r"^(?P<x>(?:when(?:ever)?|each time|every time|if) (?:you|u) (?P<verb>\w+) .{2,80}?,\s*"
    r"(?P<rule>.{4,120}))$",
    _I,
)
# "I use neovim", "im on arch", "I usually work on two machines".
_I_HABIT = re.compile(
    r"^(?P<x>(?:i|i'm|im|i am)\s+(?:usually |always |generally |mostly |normally )?"
    r"(?:use|using|on|work (?:on|with|in)|sync|write|run|prefer|preferring|code in)\s+"
    r"(?P<obj>.{2,100}))$",
    _I,
)
# "the db is on 5433", "local pg runs in the devcontainer on port 15432", "you need X".
_STATEMENT = re.compile(
    r"^(?P<x>(?P<subj>(?:the |our |my |local |staging |prod )?[a-z][\w./-]*(?: [\w./-]+){0,3}?)"
    r" (?P<verb>runs|run|lives|live|listens|goes|go|sits|needs|need|requires|require|uses"
    r"|stays|stay"
    r"|has to be|must be|should be|can be|can'?t be|cannot be|must not be|is at|are at|is in"
    r"|are in|is on|are on|is|are)\b(?P<obj>.{2,120}))$",
    _I,
)
# "the X is Y" alone is as often today's state ("my branch is feat/x", "the PR is #12",
# "the image is 2.3 GB") as configuration ("the package manager is pnpm"). It counts when
# a developer tool is named or the sentence says it holds generally.
_STANDING = re.compile(
    r"\b(?:always|never|only|everywhere|every|all|by default|in (?:all|every)|must|should"
    r"|keep it that way|for good|on purpose)\b",
    _I,
)
# "tests in this repo must be deterministic": said of the whole project, so it holds
# generally, not for today's change.
_PROJECT_WIDE = re.compile(
    r"\b(?:in|across|throughout|for) (?:this|our|the whole) (?:repo|repository|project|codebase"
    r"|code base|monorepo|company|org)\b",
    _I,
)
_ALWAYS_STATED = re.compile(r"^[^,;]{3,60}? (?:is|are) (?:always|never)\b", _I)
# ...or the subject is a standing part of a setup (its service, store, host, toolchain),
_SETUP_PART = re.compile(
    r"\b(?:db|database|server|api|host(?:name)?|cluster|registry|bucket|queue|broker|cache"
    r"|model|env(?:ironment)?|staging|prod(?:uction)?|dev|ci|pipeline|runner|editor|shell|os"
    r"|package manager|linter|formatter|framework|language|runtime|orm|proxy|gateway|domain"
    r"|region|namespace|default branch|main branch|python|node|node version|python version)$",
    _I,
)
_WORK_ITEM = re.compile(
    r"^(?:(?:the|a|an) )?(?:my|new|last|latest|current|failing|old|temporary)\b"
    r"|\b(?:branch|pr|pull request|commit|ticket|issue|migration|user|response|request|page"
    r"|file|line|version|image|log|screenshot|link|url|id"
    r"|value|number|count|size|query|loop|function|method|class|variable|output|input|stash"
    r"|port)$",
    _I,
)
# ...or it says how something is set up ("is excluded from strict mode", "are generated
# from the openapi.yaml", "is managed by the ops team").
_SET_UP = re.compile(
    r"^\s*(?:\w+ed|built|written|kept|run|done|made|set)"
    r" (?:from|by|to|with|in|on|via|through|under|at|for|into)\b",
    _I,
)
# "the report is in reports/monthly.py": where today's file is; directories where a kind
# of thing lives ("the templates are in templates/emails/") stay.
_FILE_POINTER = re.compile(r"^\s*(?:in|at|inside|under)?\s*[\w./~-]+\.[a-z]{1,6}\s*$", _I)
# "npm run dev is running in the other terminal", "the workers are restarting": a state.
# ("the linter is always complaining about X": a complaint, habitual or not)
_PROGRESSIVE = re.compile(
    r"\b(?:is|are|am|'s|'re)\s+(?:still\s+|now\s+|always\s+|constantly\s+)?\w{2,}ing\b", _I
)
_MEASURE = re.compile(r"\b\d+(?:\.\d+)?\s?(?:(?:[kmgt]i?b|ms|s|sec|seconds|min)\b|%)", _I)
_STATE = re.compile(
    # "always slow on mondays": a state that recurs is still a state
    r"^\s*(?:(?:always|often|usually|sometimes|constantly) )?"
    r"(?:not|already|still|now|too|so|very|really|just|empty|down|up|broken|slow|fast|wrong"
    r"|missing|gone|done|ready|running|failing|red|green|blank|huge|big|full|offline"
    r"|unreachable|unhealthy|behind|dirty|installed"
    # a judgement of today's code or docs, not how things are set up
    r"|outdated|out of date|stale|obsolete|incorrect|messy|a mess|confusing|ugly|fine|ok|okay"
    r"|good|great|bad|better|worse|weird|strange|annoying|nice|perfect|right there|here)\b",
    _I,
)
_YOU_NEED = re.compile(
    r"^(?P<x>(?:you|u) (?:need|must|have to|should always|should never)\b"
    r"(?!\s+(?:have|be)\b)(?P<obj>.{3,120}))$",  # "you must have missed": about the past
    _I,
)
# A subject that is really an imperative ("search the codebase for uses of X") or holds a
# preposition ("the fix for ...") is no statement's subject.
_NOT_A_SUBJECT = re.compile(
    r"^(?:search|find|check|look|make|add|fix|update|run|use|write|create|remove|delete|move"
    r"|change|show|tell|explain|try|give|put|set|get|open|read|list|print|start|stop|install"
    r"|build|test|deploy|commit|push|merge|rename|refactor|implement|let|go|see|ask|call|keep)\b"
    r"|\b(?:for|of|with|to|from|by|about|into|than)\b",
    _I,
)
_PRONOUN_SUBJECT = re.compile(
    r"^(?:it|this|that|they|these|those|he|she|there|which|what|who|i|you|we|everything"
    r"|something|nothing|anything|one|someone)\b",
    _I,
)


# A rhetorical tag ("we don't bump versions here, do we?") does not make a question.
_TAG_QUESTION = re.compile(
    r",\s*(?:do we|don'?t we|right|isn'?t it|aren'?t we|is it|ok|okay|yes)\?(?=\s|$)", _I
)
_DECISION = re.compile(
    r"^(?P<x>we (?:decided|agreed|chose|settled)(?: as a team| together)? (?:to|that|on)"
    r" .{4,200})$",
    _I,
)
_I_WOULD_LIKE = re.compile(
    r"^(?P<x>i(?:'d| would) (?:really )?like (?:the|all|our|my|new|every) [\w -]{2,40}? to"
    r" (?:follow|use|be|stay|have|always|never|go|live)\b.{2,160})$",
    _I,
)


# When a standing fact started ("since last week", "last sprint"): true when said, a
# riddle in a month. The fact stays, the date goes ("we decided last sprint to drop 3.9").
_SINCE = re.compile(
    r"(?:, ?| )?\b(?:(?:since|as of|starting|from)\s+(?:(?:last|this)\s+(?:week|month|sprint|year"
    r"|quarter|release|night|time)|yesterday|today)|last\s+(?:week|month"
    r"|sprint|year|quarter|release))\b",
    _I,
)


def normalise(text: str) -> str:
    for pattern, repl in _ESL:
        text = pattern.sub(repl, text)
    text = _SINCE.sub("", text)
    return _TAG_QUESTION.sub("", text)


def _hit(text: str, kind: str, evidence: str, scope: str | None = None) -> Hit | None:
    """The hit, or its first clause when what follows a comma spoils it ("the model is
    gpt-4o-mini, keep it that way"), as long as that clause still names something."""
    hit = rule_hit(text, kind, evidence, scope)
    if hit is None and not UNSURE_TAIL.search(text):  # not "it's on 8080, right"
        head, *tail = re.split(r",\s+", text.strip(), maxsplit=1)
        # a hedge or a time in the tail qualifies the head too: "pricing is 49 a month
        # per clinic btw, might change"
        if tail and CONCRETE.search(head) and not TRANSIENT.search(tail[0]):
            hit = rule_hit(head, kind, evidence, scope)
    return hit


# "one thing that's not negotiable: amounts are ...": a short header before the statement.
_HEADER = re.compile(r"^[^:,;]{3,40}:\s+(?=\S)")


_REQUEST_TAIL = re.compile(
    r"[,;]\s*(?:so\s+|and\s+)?(?:please|pls|can you|could you|would you)\s+(?:to\s+)?(?:review"
    r"|check|fix|look|have a look|take a look|update|explain|help|test|debug|investigate|merge"
    r"|rebase|rerun|retry|try)\b",
    _I,
)
_REMEMBER = re.compile(r"^(?:please\s+)?(?:remember|recall|reminder|fyi)[,:]?\s+(?=the |our )", _I)
# "..., so it's not urgent", "..., but that's fine": what the fact means today.
_AFTERTHOUGHT = re.compile(
    r",\s*(?:so|but|and)\s+(?:(?:it|that|this|there|they)(?:'s|'re|'ve)?|no rush"
    r"|not (?:urgent|important|a big deal))\b",
    _I,
)


def statement_hit(clause: str, masked: str) -> Hit | None:
    """A plainly stated fact or rule in one clause (see the module docstring), or None."""
    if m := _REMEMBER.match(masked):  # "remember the api is on 8080"
        clause, masked = clause[m.end() :], masked[m.end() :]
    if (m := _HEADER.match(masked)) and len(masked[: m.end()].split()) <= 6:
        clause, masked = clause[m.end() :], masked[m.end() :]
    if m := _AFTERTHOUGHT.search(masked):
        clause, masked = clause[: m.start()], masked[: m.start()]
    if _REQUEST_TAIL.search(masked):
        return None  # "the code is in the branch feature/x, please review": the task's context
    for rule in (_rule_hit, _concrete_hit):
        if hit := rule(clause, masked):
            return hit
    return None


# "always", a stressed "ever" or "no exceptions" anywhere in the sentence: "nextest,
# always, we dont use cargo test in this repo", "double underscore between source and
# entity, always", "no raw PII in any log line or audit event, ever", "every table gets
# RLS enabled + its policies in the same migration, no exceptions". People put the word
# where the rules above do not look for it. In the session-7 set written by other people
# (new3-tune) every
# user sentence with "always" that passes the shared filters held an expected fact
# (7/7); on the older tuning halves 29 of 37 did, and the misses were a pronoun's
# sentence ("it has always been postgres"), a report ("our cto friend said we should
# always ..."), a behaviour ("always reproducible on staging") and a code comment.
_STANDING_CUE = re.compile(
    r"\balways\b|,\s*ever\b|\b(?:never|not|don'?t|dont|do not) ever\b|\bonly ever\b"
    # stress that makes a sentence a standing rule: on the conversations written by other
    # people (new3, new4) 11 of 12 such user sentences held an expected fact
    r"|\b(?:no exceptions?|full stop|non-?negotiable|from now on|going forward"
    r"|without exception|hard requirement|and nothing else)\b",
    _I,
)
_STANDING_WORD = re.compile(r"\b(?:always|ever)\s+(\S+)", _I)
# a code comment, or half a sentence ("because restarting prod on a friday is always a
# great idea"); a pronoun's sentence is validation's (`validate.DEICTIC_START`)
_NOT_STANDALONE = re.compile(r"(?:#|//|--)|(?:because|which)\b", _I)
# someone else's words, or the user's own plan ("from now on I'll review them myself")
_REPORT = re.compile(
    r"\b(?:said|says|told (?:me|us)|thinks|suggested|suggests|recommends|recommended"
    r"|i'?ll|i will)\b",
    _I,
)
# "always reproducible", "always complaining", "always forget": how something behaves
_BEHAVIOUR = re.compile(rf"{NOT_IMPERATIVE.pattern}|\w+ing\b|{HAPPENS_TO_US}", _I)
MIN_STANDING_WORDS = 4


def standing_hit(clause: str, masked: str) -> Hit | None:
    """The whole sentence as a rule when it says "always" (or "..., ever") and no other
    rule read it (see `_STANDING_CUE`), or None."""
    if not _STANDING_CUE.search(masked):
        return None
    text = clause.strip().rstrip(" .!")
    after = _STANDING_WORD.search(text)
    if (
        len(text.split()) < MIN_STANDING_WORDS
        or _NOT_STANDALONE.match(text)
        or DEICTIC_START.match(text)
        or _REPORT.search(text)
        or bug_report(text)
        or (after and _BEHAVIOUR.match(after[1]))
    ):
        return None
    return _hit(text, "preference", "standing")


def _take(clause: str, m: re.Match[str]) -> str:
    return clause[m.start("x") : m.end("x")]


# "dont add env vars without adding them to .env.example": a condition on every time.
_NOT_WITHOUT = re.compile(
    r"^(?P<x>(?:don'?t|dont|do not|never) (?!\w+ing\b)\w+ .{2,80}? without \w+ing\b.{0,100})$", _I
)
# "after changing a route run make openapi": what to do each time something happens.
_AFTER_DOING = re.compile(
    r"^(?P<x>(?:after|before|whenever|every time|each time) (?:you )?\w+ing\b.{2,60}?,?\s+"
    r"(?:always |also )?(?P<verb>run|use|call|commit|update|regenerate|rebuild|restart|bump|add"
    r"|check|execute|push|tag|notify|ping|ask)\b.{2,120})$",
    _I,
)


# "migrations must always be reversible", "exports should never load a whole table": a
# subject, a modal and "always"/"never"/"only" make a standing rule whatever the words.
_MODAL_ALWAYS = re.compile(
    r"^(?P<x>(?P<subj>(?:the |our |all |every |any )?[a-z][\w./-]*(?: [\w./-]+){0,3}?)"
    r" (?:must|should|need to|needs to|has to|have to) (?:always|never|only) (?P<obj>\w.{2,150}))$",
    _I,
)


def _rule_hit(clause: str, masked: str) -> Hit | None:
    """Rules whose form makes them standing rules, named thing or not."""
    m = _MODAL_ALWAYS.match(masked)
    if (
        m
        and not _PRONOUN_SUBJECT.match(m.group("subj"))
        and not TASK_SUBJECT.match(m.group("subj"))
        and not _NOT_A_SUBJECT.search(m.group("subj"))
        and not VAGUE_START.match(m.group("obj"))
    ):
        return _hit(_take(clause, m), "preference", "modal-always")
    m = _NOT_WITHOUT.match(masked)
    if m:
        return _hit(_take(clause, m), "preference", "not-without")
    m = _AFTER_DOING.match(masked)
    if m and (m.group("verb").lower() == "run" or CONCRETE.search(masked[m.start("verb") :])):
        return _hit(_take(clause, m), "procedure", "after-doing")
    m = _WE_RULE.match(masked)
    if m and not VAGUE_START.match(m.group("obj")):
        return _hit(_take(clause, m), "preference", "we-rule", "project")
    m = _NO_THING.match(masked)
    if m and not _NOT_A_RULE.match(masked):
        return _hit(_take(clause, m), "preference", "no-thing")
    m = _WHEN_YOU.match(masked)
    if (
        m
        and m.group("verb").lower() not in ("are", "were", "re", "have", "had", "get", "got")
        # "when you run it, ...": the condition points at something in the conversation
        and not re.search(r"\b(?:it|this|that|them|those|these)\b", masked[: m.start("rule")], _I)
    ):
        # the rule ends at its own clause: "..., also add it to X, the SREs read that file"
        end = masked.find(",", m.start("rule"))
        text = clause[m.start("x") : end if end > 0 else m.end("x")]
        return _hit(text, "preference", "when-you")
    m = _DECISION.match(masked)
    if m:
        return _hit(_take(clause, m), "decision", "we-decided", "project")
    m = _I_WOULD_LIKE.match(masked)
    if m:
        return _hit(_take(clause, m), "preference", "i-would-like")
    m = _I_HABIT.match(masked)
    if m and CONCRETE.search(m.group("obj")) and not VAGUE_START.match(m.group("obj")):
        return _hit(_take(clause, m), "preference", "i-habit", "global")
    return None


def _concrete_hit(clause: str, masked: str) -> Hit | None:
    """Statements that name a tool, file, flag, port, path or version, or that say they
    hold always ("amounts are always integer cents")."""
    if not (
        CONCRETE.search(masked) or _ALWAYS_STATED.search(masked) or _PROJECT_WIDE.search(masked)
    ):
        return None
    if bug_report(masked):
        return None
    m = _CONTRAST.match(masked)
    if (
        m
        and CONCRETE.search(m.group("a"))
        and not _NEGATED_VERB.search(m.group("a"))
        and not _PRONOUN_SUBJECT.match(m.group("a"))
        and not PRONOUN.search(m.group("a"))  # "rename them in a separate PR, not here"
        and not TASK_SUBJECT.match(m.group("a"))
        and _standing_requirement(m.group("a"))
    ):
        return _hit(_take(clause, m), "preference", "contrast")
    m = _YOU_NEED.match(masked)
    if (
        m
        and not VAGUE_START.match(m.group("obj").strip())
        and not re.match(
            r"\s*to (?:fix|check|look|see|update|change|add|remove|try)\b", m.group("obj"), _I
        )
    ):
        return _hit(_take(clause, m), "procedure", "you-need")
    m = _STATEMENT.match(masked)
    if (
        m
        and not _PRONOUN_SUBJECT.match(m.group("subj"))
        and not TASK_SUBJECT.match(m.group("subj"))
        and not _NOT_A_SUBJECT.search(m.group("subj"))
        and not re.search(r"\b(?:was|were|had|did)\b", m.group("x"), _I)
        and not _STATE.match(m.group("obj"))
        and not m.group("obj").startswith((",", ":"))  # "the background is, ...": a story
        and not _MEASURE.search(m.group("obj"))
        and not _PROGRESSIVE.search(m.group("x"))
        and _standing_statement(m)
    ):
        return _hit(_take(clause, m), "fact", "statement")
    return None


_MODAL = re.compile(
    r"^(?P<subj>[^,;]{1,60}?) (?:should|must|needs? to|has to|have to)"
    r" (?:be|have|go|use|stay)\b",
    _I,
)


def _standing_requirement(text: str) -> bool:
    """ "the limit should be 50, not 100" asks for a change in today's task; it is a
    standing rule only about a part of the setup or a named tool ("db should be on 5433,
    not 5432"), or when it says so ("always")."""
    m = _MODAL.match(text)
    if not m:
        return True
    return bool(
        TOOL_NAME.search(text.lower())
        or _SETUP_PART.search(m.group("subj"))
        or _STANDING.search(text[m.end() :])
    )


def _standing_statement(m: re.Match[str]) -> bool:
    """Whether "X is/should be Y" reads as how things are set up rather than today's
    work. "is in"/"is on" are "is" ("the query is in repository.py" points at today's
    code); a modal ("the export should be a CSV") is a requirement of the task at hand
    unless the subject is a standing part of the setup or the sentence says it holds
    generally ("migrations must always be reversible")."""
    verb = m.group("verb").lower()
    if _FILE_POINTER.match(m.group("obj")) and not _SETUP_PART.search(m.group("subj")):
        return bool(_STANDING.search(m.group("x")))  # "the notebook is in notebooks/x.ipynb"
    named = bool(TOOL_NAME.search(m.group("x").lower()))
    standing = bool(
        _STANDING.search(m.group("obj"))
        or _SETUP_PART.search(m.group("subj"))
        or _PROJECT_WIDE.search(m.group("x"))
    )
    if verb.split()[0] in ("should", "must", "has", "can", "can't", "cannot"):
        return named or standing
    if verb.split()[0] not in ("is", "are", "stays", "stay"):
        return True
    return (
        named
        or standing
        or bool(_SET_UP.match(m.group("obj")))
        or not _WORK_ITEM.search(m.group("subj"))
    )
