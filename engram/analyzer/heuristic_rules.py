"""Sentence rules of the heuristic analyzer: which of the user's own sentences state a
durable fact, and how to phrase it.

Every rule is anchored at the start of a clause (after interjections such as "ok," or
"btw" and correction openers such as "no," are stripped): a phrase like "always" or "we
use" in the middle of a sentence is far more often narration ("it always fails", "the
code we use here") than an instruction. A hit must then pass filters that throw away
what would make a bad memory: questions, transient state ("right now", "let's"),
hedges ("maybe", "I think"), and pronouns that only make sense in the conversation
("never do that", "this file"). Recall is traded for precision throughout, because a
memory store full of junk is one users switch off.

Matching runs on a *masked* copy of the sentence in which multi-word quoted text is
blanked out, so a trigger inside quotes ("the docs say "always run X"") never fires,
while the fact itself is cut from the original sentence.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from engram.analyzer.heuristic_words import (
    CONCRETE,
    ELLIPTIC,
    ELLIPTIC_HEAD,
    HAPPENS_TO_US,
    NOT_IMPERATIVE,
    OCCASION,
    PRONOUN,
    SCOPE_FRAME,
    TASK_SUBJECT,
    VAGUE_START,
    acceptable,
    classify,
    scope_of,
)

_I = re.IGNORECASE
MIN_CHARS, MAX_CHARS = 12, 300  # a fact: a sentence, not a fragment or an essay


@dataclass(frozen=True, slots=True)
class Hit:
    """A fact found in one clause. `scope` is "" when the words do not settle it."""

    text: str
    kind: str
    scope: str
    evidence: str


# Interjections need punctuation after them ("good tests ..." is no interjection);
# connectives only a space.
_LEAD = re.compile(
    r"(?:(?:thanks|thank you|great|perfect|nice|cool|good|lgtm|awesome|sure|yes|yeah|yep"
    r"|ok|okay|hmm|oh|hey|well|right|important|note|nb|ps|for context|for reference"
    r"|for the record|for background)[,.!:;\u2014-]+\s*"
    # answering numbered options: "1 yes. 2 no, we don't ..."
    r"|\d{1,2}[.):]?\s+(?=(?:yes|no|nope|yeah|ok|okay)\b)"
    # terse users drop the comma: "yeah 8080", "yes db on 5433 not 5432"
    r"|(?:yes|yeah|yep|yup)\s+(?!(?:and|but|or|so|i|we|you|it)\b)"
    r"|(?:also|and|so|btw|by the way|fyi|plus|but|oh and|one more thing|just so you know"
    r"|heads up|first(?:ly)?|second(?:ly)?|third(?:ly)?|finally|lastly|and finally)\b"
    r"[\s,:\u2014-]*)+",
    _I,
)
_CORRECTION = re.compile(
    r"(?:(?:no|nope|nah|wrong|incorrect|not quite)[,.!:;\u2014-]+\s*"
    r"|(?:that'?s|that is|this is) (?:wrong|incorrect|not right|not correct|not true)"
    r"[,.!:;\u2014-]*\s*|actually[,:\u2014-]?\s+)+",
    _I,
)
_CLAUSE_SPLIT = re.compile(
    r";\s*|\s+[\u2014-]\s+|(?<=\w):\s+(?=[a-z])"
    r"|,\s*(?:and |but |so )?(?=(?:always|never|please|we (?:always |never |only )?use"
    r"|use|don'?t|do not|leave|keep|make sure|put|add|run|ask|check|open|ping)\b)"
    r"|\s+(?:and|but) (?=(?:always|never|please)\b)",
    _I,
)

# --- rules -------------------------------------------------------------------------------

_FUTURE_TAIL = re.compile(
    r"[\s,]*(?:for (?:the )?future(?: reference)?|for future reference|going forward"
    r"|moving forward|from now on|in (?:the )?future)\s*[.!]*$",
    _I,
)
_FUTURE = re.compile(r"\b(?:for (?:the )?future|future reference|going forward|from now on)\b", _I)
_HABIT = re.compile(r"\b(?:always|never|every time|each time|whenever|before|after|when)\b", _I)
_POLITE = re.compile(
    r"^(?:please\s+|pls\s+|just\s+|you (?:should|must|need to|have to)\s+"
    r"|make sure (?:to|that you|you)\s+|be sure to\s+|i want you to\s+|i'?d like you to\s+"
    r"|remember to\s+)+",
    _I,
)
_LETS = re.compile(r"^let'?s\s+", _I)

_EXPLICIT = re.compile(
    r"^(?:(?:please|pls)\s+)?(?:"
    r"remember(?:\s+(?:this|the following))?(?:\s+that\b|\s*[:\u2014-])"
    r"|(?<=please )remember\b(?!\s+(?:when|how|what|if|whether|why|where)\b)"
    r"|remember(?=\s+to\b)"
    r"|(?:don'?t|do not|never) forget(?:\s+that\b|\s*[:,\u2014-])?"
    r"|(?:keep|bear) in mind(?:\s+that\b|\s*[:,\u2014-])"
    r"|for (?:future reference|the future|the record)\s*[:,\u2014-]?"
    r"|note (?:for|to) (?:the )?future(?: you| sessions)?\s*[:,\u2014-]?"
    r"|(?P<note>(?:make a |take )?note(?:\s+that\b|\s*[:\u2014-]))"
    r")\s*(?P<x>.+)$",
    _I,
)
_FROM_NOW_ON = re.compile(
    r"^(?:from now on|going forward|moving forward|in (?:the )?future|henceforth|next time"
    r"|for all future (?:work|sessions|tasks|changes))\s*[,:\u2014-]?\s*(?P<x>.+)$",
    _I,
)
_WE_USE_NOT = re.compile(
    r"^(?P<x>(?:(?:in this (?:repo|repository|project|codebase)|here)\s*,?\s*)?"
    r"we(?:'re| are)? (?:always |only |now |just |generally |usually )?"
    r"(?:use|using|run|prefer) .+?,?\s+(?:and\s+)?(?:not|instead of|rather than|over|never)"
    r"\s+.+)$",
    _I,
)
_WE_USE = re.compile(
    r"^(?P<x>(?:(?:in this (?:repo|repository|project|codebase)|here)\s*,?\s*)?"
    r"we (?:always |only |generally |usually |all |already )?use (?P<obj>.+))$",
    _I,
)
_WE_DONT = re.compile(r"^(?P<x>we (?:don'?t|do not|never) use (?P<obj>.+))$", _I)
_WE_VERB = re.compile(
    r"^(?P<x>we (?:run|deploy|publish|release|host|ship|store|keep|name|prefix|tag|version"
    r"|follow|squash|rebase|merge|target|support|pin|vendor|build|test|write|format|lint"
    r"|document|log|review|require|branch|push|commit|install|generate|import|sync|upload"
    r"|bump|pull|call|put|suffix|encode|validate|mock|cache|back up|round|sort|split"
    r"|pass|send|check) (?!into\b|out\b"
    r"|\w+ing\b)(?P<obj>.+))$",
    _I,
)
# "..., so you can use X", "..., so please don't use int": what the fact meant for the task.
_CONSEQUENCE = re.compile(
    r",?\s+so\s+(?:please |pls )?(?:you|we|i|that|don'?t|do not|never|always|use)\b", _I
)
# Where a rule holds, said before it: "in the api repo", "for this project", "here".
_WHERE = re.compile(
    r"(?:(?:in|for|on) (?:this|the|our) (?:[\w-]+ ){0,2}?(?:repo|repository|project|codebase|code"
    r" base|service|app|monorepo|team|package|module|directory|folder|crate|workspace)"
    r"|in [\w./-]+/|here),?\s+(?=we\b|i\b|our\b|the\b)",
    _I,
)
# What a rule is about, said before it: "for plots in this repo we use plotly", "for
# migrations we use alembic". Not a time ("for now we use sqlite", "for this sprint"):
# that is a temporary state, nor an occasion ("for the hackathon we use sqlite"), and
# not "for example" / "for you".
_FOR_TOPIC = re.compile(
    r"(?:also |and )?for (?!(?:now|today|tonight|the moment|the time being|this|that|these|those"
    r"|a|an|one|once|now|next|the next|example|instance|you|me|us|them|it|real|sure|some|more"
    rf"|starters|context|reference|the record|the {OCCASION})\b)"
    r"(?:all |our )?[a-z][\w-]*(?: [a-z][\w-]*)?"
    r"(?: (?:in|for|on) (?:this|the|our) (?:[\w-]+ )?(?:repo|repository|project|codebase|service"
    r"|app|team))?,?\s+(?=we\b|our\b)",
    _I,
)
# "we're still on pydantic 1.10", "we stay on celery", "we moved to valkey 8": where a
# setup stands after a debate or a migration (the object must name something).
_WE_ON = re.compile(
    r"^(?P<x>(?:(?:we|i)(?:'re|'m| are| am) (?:still |all )?on|we (?:stay|stick) (?:on|with)"
    r"|we(?:'re| are) staying (?:on|with)|we(?:'ve| have)? (?:moved|switched|migrated)"
    r"(?: from [\w.-]+(?: [\d.]+)?)? to) (?P<obj>.+))$",
    _I,
)
_OUR = re.compile(
    r"^(?P<x>our [\w -]{1,30}? (?:runs on|runs|uses|is|are|lives in|live in|is hosted on"
    r"|deploys to|is deployed to) (?P<obj>.+))$",
    _I,
)
# "my lead said we should never commit to develop", "I was told validation is always done
# with zod": a rule of the user's team relayed by the user. Only the frame goes; what it
# relays must pass the rules on its own (a colleague's opinion, "mark said we should move
# to envoy", does not), and only people who set a team's rules count.
_RELAYED = re.compile(
    r"^(?:(?:my|our|the) (?:tech |team )?(?:lead|manager|team|cto|architect|boss|maintainers?"
    r"|reviewers?) (?:said|says|told (?:me|us)|wants|insists|decided)(?: that)?"
    r"|(?:i|we) (?:was|were|have been|'ve been|got) told(?: that)?),?\s+",
    _I,
)
_OUR_SETUP = re.compile(
    r"\b(?:runs on|uses|lives in|live in|is hosted on|deploys to|is deployed to"
    r"|(?:is|are) (?:built|deployed|hosted|generated|managed|written|kept|stored|run)"
    r" (?:with|on|in|to|from|by|via|through))\b",
    _I,
)
_WE_ALWAYS = re.compile(
    r"^(?P<x>we (?:(?:should|must|have to) )?(?:always|never) (?!(?:have|had|get|got|seem|end"
    r"|forget|run into|hit|see"
    rf"|break|lose|need|did|do)\b|{HAPPENS_TO_US})(?P<obj>.+))$",
    _I,
)
_PROJECT_USES = re.compile(
    r"^(?P<x>(?:this|the|our) (?:repo|repository|project|codebase|code base|app|monorepo"
    r"|service|backend|frontend)(?: [\w-]+)?? (?:uses|is using|runs on|is on|targets"
    r"|requires|is built with|depends on|is deployed to|deploys to) (?P<obj>.+))$",
    _I,
)
_USE_NOT = re.compile(r"^(?P<x>use (?P<obj>.+?),?\s+(?:not|instead of|rather than|over)\s+.+)$", _I)
_PREFER = re.compile(r"^(?P<x>prefer (?P<obj>.+?)\s+(?:over|to|rather than)\s+.+)$", _I)
_DONT_USE = re.compile(
    r"^(?P<x>(?:don'?t|do not|never|stop) (?:ever )?(?:use|using) (?P<obj>.+))$", _I
)
_ALWAYS = re.compile(
    r"^(?P<x>(?:always|never|don'?t ever|do not ever|never ever) (?P<obj>.+))$", _I
)
_I_PREFER = re.compile(
    r"^(?P<x>i (?:really |strongly |generally |usually |much |personally |always )?"
    r"(?:prefer|like|love|dislike|hate|don'?t like|do not like|can'?t stand) (?P<obj>.+))$",
    _I,
)
_I_RATHER = re.compile(r"^(?P<x>i(?:'d| would) (?:much )?rather (?P<obj>.+))$", _I)
_MY_PREF = re.compile(
    r"^(?P<x>my (?:preference|preferred [\w-]+(?: [\w-]+)?|style|coding style|editor|shell|os"
    r"|default [\w-]+) (?:is|are) (?P<obj>.+))$",
    _I,
)
_NOT_BUT = re.compile(
    r"^(?P<x>(?:the|our) [^,;]{1,60}? (?:is|are|uses?|runs on) not .+?,? but .+)$", _I
)
_DECLARATIVE = re.compile(
    r"^(?P<x>(?P<subj>(?:(?:the|our|my) )?[\w./-]+(?: [\w./-]+){0,4}?) (?:is|are|lives|live"
    r"|runs|run|listens|listen"
    r"|uses|use|should be|must be|needs to be|goes|go|belongs|belong|sits|points"
    r"|is called|are called|is named|defaults to|default to)\b(?P<obj>.+))$",
    _I,
)
_CORRECT_USE = re.compile(r"^(?P<x>use (?P<obj>.+))$", _I)


# The reason given for a rule: worth keeping in its first clause ("because prices change
# often"), a story after that ("... and a stale price once cost us an incident").
_REASON = re.compile(r"(?P<keep>,?\s+because\s+[^,;]+?)(?:,|\s+and\s+)(?P<story>.+)$", _I)
_MAX_REASON_WORDS = 8
_STANDS = re.compile(r"\b(?:is|are|must be|should be) (?:always|never|only)\b", _I)
# "let me think, we use postgres 14 or 15": a hedge governs the clause after it.
_HEDGE = re.compile(
    r"^(?:hmm+\W*)?(?:let me (?:think|see|check)|i'?m not sure|not sure|no idea|i think|i guess"
    r"|i believe|maybe|probably|perhaps|iirc|idk)\b",
    _I,
)


def _hit(text: str, kind: str, evidence: str, scope: str | None = None) -> Hit | None:
    text = text.strip(" \t,;:\u2014-")
    if (m := _REASON.search(text)) and len(m.group("keep").split()) <= _MAX_REASON_WORDS:
        text = text[: m.end("keep")]
    if not text or not acceptable(text):
        return None
    return Hit(text, kind, scope_of(text) if scope is None else scope, evidence)


def _object_ok(obj: str) -> bool:
    """The object of "use"/"don't use": something named, not "it" or "that". A pronoun
    after a comma may refer back within the sentence ("never hardcode keys, read them
    from the environment")."""
    return not (VAGUE_START.match(obj) or PRONOUN.search(re.split(r"[,;]", obj, maxsplit=1)[0]))


def _imperative_ok(obj: str) -> bool:
    """What follows "always"/"never": an instruction, not "never mind" or "always fails"."""
    return not NOT_IMPERATIVE.match(obj) and not ELLIPTIC.match(obj) and _object_ok(obj)


def _explicit(clause: str, masked: str) -> Hit | None:
    """ "Remember that X", "for future reference, X", "keep in mind that X": the user
    asking for a memory outright, the strongest evidence there is."""
    m = _EXPLICIT.match(masked)
    if not m:
        return None
    if m.group("note") and not _FUTURE.search(masked):
        return None  # "note that X" is how people point things out in a task
    x = _FUTURE_TAIL.sub("", clause[m.start("x") :]).strip()
    # "remember to X" (not "remember that to X, run Y", a procedure)
    to = re.search(r"(?:remember|forget)\s*$", masked[: m.start("x")], _I) and re.match(
        r"to\s+", x, _I
    )
    x = _POLITE.sub("", x[to.end() :] if to else x)
    if VAGUE_START.match(x):
        return None
    if to and not _HABIT.search(x):
        return None  # "remember to run the migrations" is about this task
    kind = classify(x)
    if to and kind == "fact":
        kind = "procedure" if re.match(r"(?:run|use|execute)\b", x, _I) else "preference"
    return _hit(x, kind, "explicit")


def _from_now_on(clause: str, masked: str) -> Hit | None:
    """ "From now on, X" / "X going forward": a standing instruction by its own words."""
    m = _FROM_NOW_ON.match(masked)
    if m:
        x = _POLITE.sub("", _LETS.sub("", clause[m.start("x") :]))
    elif _FUTURE_TAIL.search(masked) and not re.match(
        r"(?:i|i'\w+|it|this|that|you|they|he"
        r"|she|there)\b",
        masked,
        _I,
    ):
        x = _POLITE.sub("", _FUTURE_TAIL.sub("", clause))
    else:
        return None
    if VAGUE_START.match(x) or PRONOUN.search(x) or re.match(r"i(?:'ll| will|'m| am)\b", x, _I):
        return None  # "from now on I'll review them myself": the user's plan, not a rule
    return _hit(x, "preference", "from-now-on")


def _convention(clause: str, masked: str) -> Hit | None:
    """Conventions and preferences: "we use X, not Y", "always X", "I prefer X"."""

    def take(m: re.Match[str]) -> str:
        return clause[m.start("x") : m.end("x")]

    if m := _WE_USE_NOT.match(masked):
        return _hit(take(m), "preference", "we-use-not", "project")
    if m := _WE_DONT.match(masked) or _WE_ALWAYS.match(masked):
        ok = _imperative_ok(m.group("obj"))
        return _hit(take(m), "preference", "we-always", "project") if ok else None
    if m := _WE_USE.match(masked):
        obj = m.group("obj")
        if (
            len(obj.split()) > 10
            or not _object_ok(obj)
            or re.match(r"(?:a lot|lots|too|much|many|some|more|less|a bit)\b", obj, _I)
        ):
            return None
        return _hit(take(m), "preference", "we-use", "project")
    if m := _WE_VERB.match(masked):
        obj = m.group("obj")
        # "we require urllib3 2.x, that's in our pyproject and it stays that way": the rule
        # is the first clause; what follows the comma only remarks on it
        head = re.split(r",\s+", obj, maxsplit=1)[0]
        ok = len(obj.split()) <= 15 and not VAGUE_START.match(obj) and not PRONOUN.search(head)
        if not ok:
            return None
        whole = _hit(take(m), "preference", "we-verb", "project")
        if whole or head == obj or not CONCRETE.search(head):
            return whole
        return _hit(
            take(m)[: len(take(m)) - len(obj) + len(head)], "preference", "we-verb", "project"
        )
    for rule, name in ((_PROJECT_USES, "project-uses"), (_OUR, "our"), (_WE_ON, "we-on")):
        if m := rule.match(masked):
            ok = (
                _object_ok(m.group("obj"))
                and (
                    rule is _PROJECT_USES
                    or bool(CONCRETE.search(m.group("x")))
                    # "our migrations are always reversible": a rule by its form
                    or bool(re.match(r"(?:always|never|only)\b", m.group("obj"), _I))
                    # "our ci runs on github actions", "our docs are built with mkdocs":
                    # ours, and how it is set up
                    or (rule is _OUR and bool(_OUR_SETUP.search(m.group("x"))))
                )
                and not TASK_SUBJECT.match(m.group("x"))  # "our main problem is ..."
                # "we're on v2 until the migration is done": a state with its end date
                and not re.search(r"\buntil\b|\btill\b", m.group("obj"), _I)
            )
            # "we're on 3.12 so you can use X": the fact, without what it meant for the task
            text = _CONSEQUENCE.split(take(m), maxsplit=1)[0]
            return _hit(text, "fact", name, "project") if ok else None
    if m := _USE_NOT.match(masked):
        # "use a dict instead of a list" is a task; a named tool or library is a convention.
        obj = m.group("obj")
        named = bool(CONCRETE.search(obj)) or not re.match(
            r"(?:a|an|the|this|that|some|my|your|our|its|their|existing)\b", obj, _I
        )
        ok = _object_ok(obj) and named
        return _hit(take(m), "preference", "use-not") if ok else None
    for rule, name in ((_PREFER, "prefer"), (_DONT_USE, "dont-use")):
        if m := rule.match(masked):
            return _hit(take(m), "preference", name) if _object_ok(m.group("obj")) else None
    if (m := _ALWAYS.match(masked)) and _imperative_ok(m.group("obj")):
        return _hit(take(m), "preference", "always-never")
    for rule in (_I_PREFER, _I_RATHER, _MY_PREF):
        if m := rule.match(masked):
            # "I don't like the naming": a reaction to what is on screen, not a taste.
            reaction = (
                rule is _I_PREFER
                and re.match(
                    r"i (?:\w+ )?(?:like|love|dislike|hate|don'?t"
                    r"|do not|can'?t)",
                    masked,
                    _I,
                )
                and re.match(r"(?:the|your|this|that)\b", m.group("obj"), _I)
            )
            ok = _object_ok(m.group("obj")) and not reaction
            return _hit(take(m), "preference", "i-prefer") if ok else None
    return None


def _correction(clause: str, masked: str) -> Hit | None:
    """After "no,"/"actually": a statement naming something concrete is a correction."""
    for rule, kind in ((_DECLARATIVE, "fact"), (_CORRECT_USE, "preference")):
        m = rule.match(masked)
        if not m or not CONCRETE.search(m.group("x")):
            continue
        obj = m.group("obj")
        if re.search(r"\b(?:was|were|had)\b", m.group("x"), _I) or VAGUE_START.match(obj):
            return None
        if TASK_SUBJECT.match(m.group("x")) or re.match(
            r"(?:it|that|this|they|you|i|we|he|she|there|which|what|who)\b", m.group("x"), _I
        ):
            return None
        if kind == "preference" and PRONOUN.search(obj):
            return None
        return _hit(clause[m.start("x") : m.end("x")], kind, "correction")
    return None


def strip_openers(clause: str, masked: str) -> tuple[str, str, bool]:
    """Drop interjections, correction openers and a relayed rule's frame ("my lead said");
    report whether one was a correction."""
    corrected = False
    while True:
        m = _LEAD.match(masked) or _CORRECTION.match(masked) or _RELAYED.match(masked)
        if not m or not m.end():
            return clause, masked, corrected
        corrected = corrected or _CORRECTION.match(masked) is not None
        clause, masked = clause[m.end() :], masked[m.end() :]


def strip_polite(clause: str, masked: str) -> tuple[str, str]:
    """Drop "please", "just", "make sure to" and the like before an instruction."""
    cut = m.end() if (m := _POLITE.match(masked)) else 0
    return clause[cut:], masked[cut:]


def _clause_hit(clause: str, masked: str, corrective: bool, explicit_only: bool) -> Hit | None:
    """The first rule that fires on a clause, strongest evidence first."""
    clause, masked, corrected = strip_openers(clause, masked)
    clause, masked = clause.rstrip(" .!"), masked.rstrip(" .!")
    if len(masked) < 8:
        return None
    if hit := _explicit(clause, masked):
        return hit
    if explicit_only:
        return None
    if hit := _from_now_on(clause, masked):
        return hit
    polite = _POLITE.match(masked)
    cut = polite.end() if polite else 0
    if hit := _convention(clause[cut:], masked[cut:]):
        return hit
    # "in the api repo, we're on node 20": the rule after the place it holds in
    if (where := _WHERE.match(masked) or _FOR_TOPIC.match(masked)) and (
        hit := _convention(clause[where.end() :], masked[where.end() :])
    ):
        text = clause[: where.end()].rstrip(" ,") + ", " + hit.text
        return _hit(text, hit.kind, hit.evidence, "project" if hit.scope else None)
    if m := _NOT_BUT.match(masked):
        return _hit(clause[m.start("x") : m.end("x")], "fact", "not-but")
    if corrective or corrected:
        return _correction(clause, masked)
    return None


_AGENDA = re.compile(
    r"^\W*(?:(?:ok|okay|so|well|right|alright|yeah|and)\W+)*"
    r"(?:(?:the|my|our|today'?s|a|rough) )?(?:\w+ )?(?:plan|todo|to-do|to do|agenda)\b"
    r"[^:.]{0,25}:",
    _I,
)


def sentence_hits(
    sentence: str, masked: str, *, corrective: bool = False, explicit_only: bool = False
) -> Iterator[Hit]:
    """The facts in one sentence: first the sentence as a whole, then clause by clause
    (so "fix the typo; always run ruff first" still yields its second half). What
    follows "the plan is:" / "todo:" is today's agenda, whatever its words."""
    if _AGENDA.match(masked):
        return
    if hit := _clause_hit(sentence, masked, corrective, explicit_only):
        yield hit
        return
    start = 0
    pieces: list[tuple[str, str, bool]] = []  # (clause, masked, follows "so")
    consequence = False
    for m in _CLAUSE_SPLIT.finditer(masked):
        pieces.append((sentence[start : m.start()], masked[start : m.start()], consequence))
        start, consequence = m.end(), bool(re.search(r"\bso\s*$", m.group(), _I))
    if not pieces:
        return
    pieces.append((sentence[start:], masked[start:], consequence))
    previous: Hit | None = None
    hedged = contrasted = framed = False
    for clause, mclause, follows_so in pieces:
        # "IDs are ULIDs, so don't use int": what follows from a fact already kept;
        # "amounts are always Decimal, never float": the second half of a contrast whose
        # verb is in the first, which the sentence as a statement keeps whole.
        hit = _clause_hit(clause, mclause, corrective, explicit_only)
        opened = strip_openers(clause, mclause)[1]
        rule = _ALWAYS.match(opened)
        # "..., never by row, otherwise leakage": a clause of the sentence with no verb of
        # its own ("never" + a preposition) is the contrast of a clause before it, not a rule
        elliptic = rule is not None and (contrasted or bool(ELLIPTIC_HEAD.match(rule["obj"])))
        if hit and not (follows_so and previous) and not hedged and not elliptic and not framed:
            yield hit
        previous = hit
        hedged = bool(_HEDGE.match(opened))
        # "for today, never touch auth": the frame holds for every clause after it
        framed = framed or (len(opened.split()) <= 6 and bool(SCOPE_FRAME.match(opened)))
        contrasted = not hit and bool(_STANDS.search(opened))


def ratified(sentence: str, masked: str) -> Hit | None:
    """A sentence the user then called a standing rule ("that's our policy"), without a
    short header ("add to action items: ..."), unless it is a question, a request or
    transient by the filters every rule shares. Named or not: the user said it is a rule."""
    clause, masked, _ = strip_openers(sentence, masked)
    if (m := re.match(r"[^:,;]{3,40}:\s+(?=\S)", masked)) and len(m.group().split()) <= 6:
        clause, masked = clause[m.end() :], masked[m.end() :]
    if re.match(r"(?:can|could|would|will) (?:you|u)\b", masked, _I):
        return None
    cut = m.end() if (m := _POLITE.match(masked)) else 0
    return _hit(clause[cut:].rstrip(" .!"), "preference", "ratified")


def opens_with_correction(masked: str) -> bool:
    """Whether a message starts by telling the assistant it got something wrong."""
    m = _LEAD.match(masked)
    return _CORRECTION.match(masked[m.end() :] if m else masked) is not None
