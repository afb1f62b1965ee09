"""The heuristic analyzer: offline, free, rule-based memories for when no model is set up.

It answers in the same command grammar as the LLM analyzer (`engram add --kind K
--scope S "fact"`), so both go through one parser and validator. It only trusts two
kinds of evidence:

- the user's own words (harness blocks, engram's injected block, code blocks, quoted
  lines and pasted logs removed), read by the sentence rules in `heuristic_rules`:
  explicit "remember that X", stated conventions and preferences, and corrections;
- shell commands: a command that failed and a later variant of it that succeeded
  (`npm install` -> `pnpm install`) make a gotcha.

Assistant text is never a source: the assistant speculates, and a memory built on its
guesses would be repeated back to it as truth. Without a model there is no judgement,
so every rule errs towards saying nothing; see `heuristic_words` for the filters.
"""

from __future__ import annotations

import re
import shlex
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from engram.analyzer import heuristic_commands as commands
from engram.analyzer import heuristic_context as context
from engram.analyzer import heuristic_rules as rules
from engram.analyzer import heuristic_statements as statements
from engram.analyzer import heuristic_words as words
from engram.analyzer.validate import concrete_tokens, content_words, looks_like_output
from engram.wire.text import is_preamble, user_words

NAME = "heuristic"

# A message longer than this is pasted material or a generated prompt (a sub-agent task,
# a slash command), whose "always"/"never" are not the user's: only explicit requests
# to remember count there.
LONG_MESSAGE = 3000
MAX_SENTENCE = 600


@dataclass(frozen=True)
class Fact:
    """One memory: its sentence, kind, scope, and `evidence` (the rule that fired)."""

    text: str
    kind: str
    scope: str  # "global" | "project"
    evidence: str = ""


def analyze(conversations: Sequence[Mapping[str, Any]]) -> list[str]:
    """Command lines for the facts in `conversations`, in the LLM analyzer's grammar."""
    return [render(fact) for fact in extract(conversations)]


def render(fact: Fact) -> str:
    """`engram add ...` with the fact quoted so that `shlex.split` returns it verbatim.
    Double quotes read best; text a shell would expand or that holds quotes gets
    single-quoted (`shlex.quote`), which is also safe if someone pastes the line."""
    text = fact.text
    quoted = f'"{text}"' if not re.search(r'["\\$`!]', text) else shlex.quote(text)
    return f"engram add --kind {fact.kind} --scope {fact.scope} {quoted}"


def extract(conversations: Sequence[Mapping[str, Any]]) -> list[Fact]:
    """The facts in a batch of conversation deltas, without duplicates."""
    facts: list[Fact] = []
    seen: set[str] = set()
    if not isinstance(conversations, Sequence | Iterator):
        return facts
    for conversation in conversations:
        if not isinstance(conversation, Mapping):
            continue
        project = conversation.get("project")
        has_project = isinstance(project, str) and bool(project.strip())
        turns = conversation.get("turns")
        if not isinstance(turns, Sequence) or isinstance(turns, str | bytes):
            continue
        turns = [t for t in turns if isinstance(t, Mapping)]
        found: list[tuple[str, str, str, str]] = []
        for text in _user_messages(turns):
            for hit in _message_hits(text):
                found.append((hit.text, hit.kind, hit.scope, hit.evidence))
        for text in commands.command_facts(turns):
            found.append((text, "gotcha", "", "command-fix"))
        mine: list[Fact] = []
        for raw, kind, scope, evidence in found:
            finished = _finish(raw)
            key = _dedupe_key(finished) if finished else ""
            if not finished or key in seen:
                continue
            seen.add(key)
            scope = (scope or "project") if has_project else "global"
            _keep_once(mine, Fact(finished, kind, scope, evidence))
        facts.extend(mine)
    return facts


_PROHIBITION = re.compile(r"\b(?:never|don'?t|dont|do not|avoid|stop|no longer)\b", re.I)


def _keep_once(kept: list[Fact], fact: Fact) -> None:
    """Add `fact` unless a fact of the same conversation already says all of it; replace
    one it says all of. People restate a fact ("the api is on 8080" ... "yes, 8080 not
    8000"), and each restatement would otherwise be a memory of its own, some of them
    fragments. Only facts naming the same things (ports, tools, paths) with the same
    polarity are compared: "always use npm" never swallows "never use npm"."""
    tokens, words = concrete_tokens(fact.text), content_words(fact.text)
    if not tokens:
        kept.append(fact)
        return
    banned = bool(_PROHIBITION.search(fact.text))
    for i, other in enumerate(kept):
        if bool(_PROHIBITION.search(other.text)) != banned:
            continue
        theirs, their_words = concrete_tokens(other.text), content_words(other.text)
        if tokens <= theirs and words <= their_words:
            return
        if theirs and theirs <= tokens and their_words <= words:
            kept[i] = replace(fact, kind=other.kind if fact.kind == "fact" else fact.kind)
            return
    kept.append(fact)


def _finish(text: str) -> str | None:
    """A capitalised sentence ending in a period, or None if it cannot be a memory."""
    text = " ".join(text.split()).rstrip(" ,;:")
    text = re.sub(
        r"(?:[,\s]+(?:please|thanks|thank you|thx|ty|by the way|btw|ok|okay))+[.!]*$",
        "",
        text,
        flags=re.I,
    )
    text = re.sub(r"[.!\s]+$", "", text)
    if not text:
        return None
    first = text.split(" ", 1)[0]
    text = (text if words.keeps_case(first) else text[0].upper() + text[1:]) + "."
    if not rules.MIN_CHARS <= len(text) <= rules.MAX_CHARS or "[REDACTED" in text:
        return None
    if "engram-memory" in text.casefold():
        return None
    return text


def _dedupe_key(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


# --- the user's words --------------------------------------------------------------------

# Messages an agent sends in the user's name: compaction summaries (which quote the user,
# already seen), local-command caveats, and slash commands (the rest of that message is
# the command's expanded prompt, not something the user just said).
_HARNESS_MESSAGES = re.compile(
    r"^(?:This session is being continued from a previous conversation"
    r"|Caveat: The messages below were generated by the user)|<command-name>"
)
_HARNESS_TAGS = (
    "command-message",
    "command-args",
    "command-stdout",
    "local-command-stdout",
    "local-command-stderr",
    "bash-input",
    "bash-stdout",
    "bash-stderr",
    "ide_opened_file",
    "ide_selection",
    "ide_diagnostics",
    "user-prompt-submit-hook",
    "task-notification",
)
_INTERRUPTED = re.compile(r"^\[Request interrupted[^\]\n]*\]\s*$", re.M)
_CODEX_IDE = "## My request for Codex:"  # Codex IDE: open tabs and files come first
_BULLET = re.compile(r"^\s*(?:[-*+\u2022]|\d{1,2}[.)])\s+")
_LIST_HEADER = re.compile(
    r"^(?:please\s+)?(?:remember|note for the future|for future reference|keep in mind)"
    r"(?:\s+(?:this|these|the following))?\s*:\s*$",
    re.I,
)
_QUOTED = re.compile(r'"[^"\n]{0,400}"|\u201c[^\u201d\n]{0,400}\u201d')
_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
# A rule about what the sentence before named: "don't edit them in the UI" (doing
# something to it; "don't mix them up" is a caution for the task at hand).
_FOLLOW_UP = re.compile(
    r"(?:(?:so|and|but|please|pls)\s+)*(?:don'?t|dont|do not|never|always|only) (?:edit|touch"
    r"|change|modify|commit|delete|remove|rename|move|upgrade|bump|update|import|call|run|use"
    r"|hardcode|log|print|expose|cache|store|format|regenerate|check in|push) (?:them|it)\b",
    re.I,
)
# "no emojis. ever.": a tail that only stresses the sentence before it (not "monday then").
_INTENSIFIER = re.compile(
    r"(?:ever|never|always|period|anywhere|everywhere|at all|no exceptions?|seriously"
    r"|full stop)\b[.!\s]*$"
)
# A sentence that declares the one before it a standing rule: "that's our policy from
# now on", "that's the rule here", "this is how we do it".
_RATIFY = re.compile(
    r"(?:that'?s|that is|this is|it'?s) (?:our|the|a|the team'?s) (?:policy|rule|convention"
    r"|standard|norm|process|practice)\b(?! for (?:today|now|this)\b)"
    r"|(?:that'?s|this is) how we do (?:it|things)\b",
    re.I,
)
# The same said in one sentence: "ack after processing is the rule from now on", "prices
# are stored net, that's the rule". What comes before is the rule; a time in the sentence
# ("that's the rule for today") makes it none.
_RATIFIED_INLINE = re.compile(
    r"^(?P<x>.{8,}?)(?:,\s*(?:that'?s|that is|this is)|\s+is) (?:our|the|a|the team'?s)"
    r" (?:policy|rule|convention|standard|norm)\b(?:\s+(?:here|now|from now on|going forward"
    r"|in this (?:repo|repository|project|codebase)))?\s*(?:$|[,.;!])",
    re.I,
)
_ABBREVIATION = re.compile(r"(?:\be\.g|\bi\.e|\betc|\bvs|\bcf)\.$", re.I)


def _user_messages(turns: Sequence[Mapping[str, Any]]) -> Iterator[str]:
    """What the user typed in each user turn; harness and tool material left out."""
    for turn in turns:
        text = turn.get("text")
        if turn.get("role") != "user" or not isinstance(text, str) or not text.strip():
            continue
        if is_preamble(text):
            continue
        words = user_words(text)
        if _HARNESS_MESSAGES.search(words):
            continue
        if _CODEX_IDE in words:
            words = words[words.rindex(_CODEX_IDE) + len(_CODEX_IDE) :]
        # Claude Code's "#" shortcut: the user asking for a memory in so many words.
        words = words.replace("<user-memory-input>", "\nRemember: ").replace(
            "</user-memory-input>", "\n"
        )
        if words := _INTERRUPTED.sub("", _drop_tags(words)).strip():
            yield words


def _drop_tags(text: str) -> str:
    """Remove Claude Code's local-command blocks (`<bash-stdout>...`); linear in `text`."""
    if "<" not in text:
        return text
    for name in _HARNESS_TAGS:
        opener, closer = f"<{name}>", f"</{name}>"
        pieces, pos = [], 0
        while (start := text.find(opener, pos)) >= 0:
            end = text.find(closer, start)
            if end < 0:
                break
            pieces.append(text[pos:start])
            pos = end + len(closer)
        text = "".join(pieces) + text[pos:]
    return text


# A line that announces someone else's text: "here's the README section, for
# reference:", "colleague's message from teams:", "the agent in the other session wrote
# this plan:", "the slack thread, pasting so you have context:". It names a source or the
# act of pasting and ends in a colon; what follows is not the user's own statement.
_PASTE_INTRO = re.compile(
    r"\b(?:here'?s|here is|pasting|pasted|paste|copying|copied|quoting|quote|wrote|writes"
    r"|says|said|for reference|for context|readme|docs?|documentation|faq|issue|ticket|thread"
    r"|message|email|mail|slack|teams|chat|transcript|plan|post|comment|answer|section"
    r"|changelog|release notes|spec)\b[^:]*:\s*$",
    re.I,
)
# A pasted document's lines: a heading, a list item, "name: text" (a chat log), or a line
# that opens with something other than the user's own voice. The user's voice comes back
# with a line that opens in lower case (typed, not typeset) or with I/we/our/my or a
# reply word ("I don't agree with 3. our tiles are immutable").
_USER_VOICE = re.compile(
    r"^(?:[a-z]|(?i:i|i'm|i'd|i've|we|we're|we'd|we've|our|my|ok|okay|yes|no|but|so|and"
    r"|that'?s|this is|thanks)\b)"
)
_SPEAKER = re.compile(r"^[\w .'-]{1,30}:\s")


def _pasted(line: str) -> bool:
    stripped = line.strip()
    return bool(
        stripped.startswith("#")
        or _BULLET.match(line)
        or _SPEAKER.match(stripped)
        or not _USER_VOICE.match(stripped)
    )


def _prose(text: str) -> str:
    """The message without code blocks, quoted lines, pasted program output (indented
    lines, log and traceback lines, `path:line:` diagnostics), pasted documents (the lines
    after a line announcing them, see `_PASTE_INTRO`) and bullet markers; items under a
    "Remember:" header become "Remember: item" lines."""
    text = "\n".join(text.split("```")[0::2])  # an unclosed fence hides the rest
    lines: list[str] = []
    in_list = in_paste = False
    for line in text.split("\n"):
        if line.startswith(("    ", "\t", ">", "$ ")) or looks_like_output(line):
            continue
        if in_paste and line.strip() and _pasted(line):
            continue
        in_paste = bool(_PASTE_INTRO.search(line))
        bullet = _BULLET.match(line)
        stripped = line[bullet.end() :] if bullet else line.strip()
        if _LIST_HEADER.match(stripped):
            in_list = True
            continue
        if in_list and bullet:
            stripped = "Remember: " + stripped
        elif stripped:
            in_list = False
        lines.append(stripped)
    return "\n".join(lines)


def _mask(text: str) -> str:
    """Blank out multi-word quoted text (same length, so offsets still match)."""

    def blank(m: re.Match[str]) -> str:
        inner = m.group()[1:-1]
        if " " not in inner:
            return m.group()
        return m.group()[0] + "\u2591" * len(inner) + m.group()[-1]

    return _QUOTED.sub(blank, text)


def _sentences(text: str, masked: str) -> Iterator[tuple[str, str]]:
    """Sentences (and lines) of `text` with their masked twins, split on the masked copy
    so that a period inside a quotation does not end a sentence. A word or two in lower
    case that only stresses the sentence before it on the same line ("no emojis. ever.")
    is its tail, so the period before it reads as a comma."""
    spans: list[list[int]] = []  # [start, end, start of the gap before it]
    start = gap = 0
    for m in _SPLIT.finditer(masked):
        inline = m.group().strip() == "" and "\n" not in m.group()
        if inline and _ABBREVIATION.search(masked[max(start, m.start() - 5) : m.start()]):
            continue
        if m.start() > start:
            spans.append([start, m.start(), gap])
        start, gap = m.end(), m.start()
    if start < len(text):
        spans.append([start, len(text), gap])
    merged: list[list[int]] = []
    commas: list[int] = []
    for span in spans:
        s0, e0, g0 = span
        piece = masked[s0:e0]
        if (
            merged
            and "\n" not in masked[g0:s0]
            and _INTENSIFIER.match(piece)
            and len(piece.split()) <= 2
            and masked[merged[-1][1] - 1] == "."
        ):
            commas.append(merged[-1][1] - 1)
            merged[-1][1] = e0
        else:
            merged.append(span)
    for s0, e0, _ in merged:
        at = [i - s0 for i in commas if s0 <= i < e0]
        yield _commas(text[s0:e0], at), _commas(masked[s0:e0], at)


def _commas(text: str, at: list[int]) -> str:
    """`text` with the characters at the given offsets made commas."""
    if not at:
        return text
    chars = list(text)
    for i in at:
        chars[i] = ","
    return "".join(chars)


_SUBJECTLESS = re.compile(r"(?:always|never|only|don'?t|do not)\b", re.I)


def _fuller(hits: list[rules.Hit], sentence: str, masked: str) -> list[rules.Hit]:
    """The sentence read as one statement instead of the clause rules' pieces, when the
    pieces lost their subject to it and it holds them all: "the apps should always go
    through sentinel and never hardcode a redis host" is one rule, not "Never hardcode a
    redis host."."""
    clause, mclause, _ = rules.strip_openers(sentence, masked)
    whole = statements.statement_hit(clause.rstrip(" .!"), mclause.rstrip(" .!"))
    if whole is None:
        return hits
    text = _dedupe_key(whole.text)
    if all(
        _SUBJECTLESS.match(h.text) and _dedupe_key(h.text) in text and len(h.text) < len(text)
        for h in hits
    ):
        return [whole]
    return hits


def _message_hits(text: str) -> Iterator[rules.Hit]:
    """The facts in one user message. A message that opens with "no,"/"actually" makes
    its first sentences corrections, so "No. The port is 5433." is read as one. A thin
    fact carries the user's instruction next to it (`heuristic_context`)."""
    prose = statements.normalise(_prose(text))
    masked = _mask(prose)
    explicit_only = len(prose) > LONG_MESSAGE
    corrective = False
    kept: list[tuple[int, rules.Hit]] = []  # (sentence index, hit)
    bare: dict[int, tuple[str, str]] = {}  # sentences that gave no fact and joined none
    previous: list[rules.Hit] = []  # held back: the next sentence may be its rule
    at = 0  # the sentence `previous` came from
    unmatched: tuple[str, str] | None = None  # the sentence before, if it held no fact
    asked = False  # a sentence before asked for work (`words.REQUEST`)
    for index, (sentence, msentence) in enumerate(_sentences(prose, masked)):
        if index == 0:
            corrective = rules.opens_with_correction(msentence)
        if len(sentence) > MAX_SENTENCE:
            kept.extend((at, hit) for hit in previous)
            previous = []
            continue
        hits = list(
            rules.sentence_hits(
                sentence,
                msentence,
                corrective=corrective and index < 3,
                explicit_only=explicit_only,
            )
        )
        if hits and not explicit_only:
            hits = _fuller(hits, sentence, msentence)
        if not hits and not explicit_only:
            clause, mclause, _ = rules.strip_openers(sentence, msentence)
            if previous and (rule := _FOLLOW_UP.match(mclause)) and words.acceptable(mclause):
                # "the docs are generated from openapi.yaml. don't edit them by hand"
                end = mclause.find(",", rule.end())
                tail = clause[: end if end > 0 else len(clause)].rstrip(" .!")
                hits = [replace(previous[-1], text=f"{previous[-1].text.rstrip(' .!')}; {tail}")]
                previous = previous[:-1]
            elif unmatched and _RATIFY.match(mclause):
                # "every deploy needs a 30 minute canary. that's our policy from now on"
                hit = rules.ratified(*unmatched)
                hits = [hit] if hit else []
                bare.pop(index - 1, None)
            elif (inline := _RATIFIED_INLINE.match(mclause)) and not words.TRANSIENT.search(
                mclause
            ):
                hit = rules.ratified(clause[: inline.end("x")], mclause[: inline.end("x")])
                hits = [hit] if hit else []
            else:
                hit = statements.statement_hit(clause.rstrip(" .!"), mclause.rstrip(" .!"))
                hit = hit or statements.standing_hit(clause, mclause)
                hits = [hit] if hit else []
        if asked and not words.ASIDE.search(msentence):
            hits = [hit for hit in hits if not _describes_task(hit)]
        asked = asked or bool(words.REQUEST.match(msentence.strip()))
        unmatched = None if hits else (sentence, msentence)
        if not hits:
            bare[index] = (sentence, msentence)
        kept.extend((at, hit) for hit in previous)
        previous, at = hits, index
    kept.extend((at, hit) for hit in previous)
    if explicit_only:
        yield from (hit for _, hit in kept)
    else:
        yield from _with_neighbours(context.elaborated(kept, bare), bare)


def _describes_task(hit: rules.Hit) -> bool:
    """A plain description ("player is a CharacterBody2D") after the user asked for work
    in the same message: it describes that work (see `words.REQUEST`)."""
    return hit.evidence == "statement" and not words.GENERAL.search(hit.text)


def _with_neighbours(
    kept: list[tuple[int, rules.Hit]], bare: dict[int, tuple[str, str]]
) -> Iterator[rules.Hit]:
    """Each hit, a thin one joined to the instruction just before it or else just after
    it, when that sentence gave no fact of its own (see `heuristic_context`)."""
    per_sentence = Counter(at for at, _ in kept)  # facts per sentence
    for at, hit in kept:
        if per_sentence[at] == 1 and context.thin(hit.text):
            for side, before in ((at - 1, True), (at + 1, False)):
                if side not in bare or (said := context.instruction(*bare[side])) is None:
                    continue
                if whole := context.joined(hit, *said, before=before):
                    del bare[side]
                    hit = whole
                    break
        yield hit
