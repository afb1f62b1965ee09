"""What an analyzer answer may change, enforced in code: conversation text is data.

Threat: whoever controls text the agent reads (tool output, a fetched page, a file in
a cloned repository, an issue comment, a dependency's README) controls part of what
the analyzer reads. The prompt tells the model the conversation is data; a model can
still be steered, and a small local model easily. So the runner applies an answer only
through these rules (issue 14.4), whatever the model wrote:

1. **Cap.** At most `analyzer.max_commands` commands per conversation per batch; the
   rest are dropped and counted (`capped` in `engram stats`). Commands are attributed
   to the conversation whose text they come from (their target's, for supersede and
   forget; the best word overlap, for add).
2. **Global scope needs the user's words.** In a conversation with a project, a
   memory becomes global only when the user's own words carry it (`carried`): what
   the user typed, without tool output, harness blocks or the assistant's text.
   Otherwise it is stored in the project's scope (`rescoped`). A supersede of a
   global memory that the user's words do not carry becomes a project memory too;
   the global one stays.
3. **Targets.** `supersede`/`forget` only of candidates retrieved for that
   conversation's own user turns, in its project's scope, or global when the user's
   words carry it (a forget of a global memory also needs the user to say something
   changed: "no longer", "instead", "don't", ...).
4. **Quarantine.** A memory whose text `quarantine.screen` flags is stored with status
   `review`: never injected or mirrored until `engram review accept` (a supersede
   waits too: the old memory stays active until then). Text rejected in review once
   is not proposed again.

What remains possible, in docs/privacy.md: a steered analyzer can still add up to
`max_commands` project-scoped memories per conversation that no pattern flags (a
look-alike package name, a wrong port); `engram log` and `engram review` show where
each came from (`provenance`: the journal rows).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engram.analyzer.grammar import Command
from engram.analyzer.quarantine import Finding, screen
from engram.wire.text import is_preamble, user_words

# Output the user did not write, even inside a user turn: `!cmd` and slash-command
# output in Claude Code.
_COMMAND_OUTPUT = re.compile(
    r"<(bash-stdout|bash-stderr|local-command-stdout|local-command-stderr)>.*?</\1>", re.DOTALL
)
_WORD = re.compile(r"[a-z0-9][a-z0-9_+#.-]*[a-z0-9+#]|[a-z0-9]", re.IGNORECASE)
# Words that say nothing about *which* fact it is: function words, and the way analyzers
# phrase a memory ("The user prefers ...", "Always use ...").
_STOP = frozenset(
    """
    a an the and or but nor so to of in on at by for from with without into onto over
    under about as than then that this these those it its is are was were be been being
    do does did done not no yes if when while where which who whom whose what why how
    all any each every some such only also just very more most much many few less own
    i me my mine we us our you your he she they them their his her there here
    user users user's the-user prefer prefers preferred preference wants want wanted
    like likes liked use uses used using always never should must shall will would can
    could may might need needs please pls instead rather one ones thing things way ways
    new get gets make makes made keep keeps let lets see
    """.split()
)
_CHANGE = re.compile(
    r"\b(?:no\s+longer|not\s+any\s*more|anymore|any\s+more|don'?t|do\s+not|doesn'?t|stop"
    r"|stopped|never|instead|switched|moved\s+(?:to|away)|changed|replaced?|removed?"
    r"|drop(?:ped)?|forget|outdated|obsolete|deprecated|wrong|incorrect|not\s+true"
    r"|no\s+more|isn'?t|aren'?t|wasn'?t)\b",
    re.IGNORECASE,
)
# The user talking about this project only ("in this repo"): not a global preference.
_HERE = re.compile(
    r"\b(?:this|the|our)\s+(?:repo|repository|project|codebase|service|app)\b|\bhere\b",
    re.IGNORECASE,
)
_EVERYWHERE = re.compile(
    r"\b(?:always|every(?:where|\s+\w+)?|all\s+(?:my|of\s+my|the)|any\s+\w+|in\s+general"
    r"|globally|across)\b",
    re.IGNORECASE,
)
CARRY_THRESHOLD = 0.5
_DIGIT = re.compile(r"\d")


def _stem(word: str) -> str:
    word = word.lower().strip(".-")
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> set[str]:
    return {_stem(w) for w in _WORD.findall(text) if w.lower() not in _STOP} - {""}


def carried(memory: str, user: str) -> bool:
    """Whether the user's own words state `memory` (tuned on carry.jsonl's tuning half).

    At least half of the memory's content words (function words and the analyzers'
    phrasing left out, crude stemming) must be among the user's words, and every word
    with a digit in it (a version, a port, a path like `python3.12`) too: the user
    asking "which Node version?" does not carry "Node 20", the tool output did. When
    the user spoke about "this repo"/"here" without an "always"/"every" of their own,
    the words carry a project fact, not a global one.
    """
    words = content_words(memory)
    if not words:
        return False
    said = content_words(user)
    shared = words & said
    if not shared or len(shared) < CARRY_THRESHOLD * len(words):
        return False
    if any(_DIGIT.search(w) for w in words - said):
        return False
    return not (_HERE.search(user) and not _EVERYWHERE.search(user))


def asks_to_drop(memory: str, user: str) -> bool:
    """A forget of a global memory: the user's words name it and say it changed."""
    return carried(memory, user) and _CHANGE.search(user) is not None


def carried_by(memory: str, messages: Iterable[str]) -> bool:
    """`carried` by one of the user's messages (each read on its own: "here" in one
    message says nothing about another)."""
    return any(carried(memory, m) for m in messages)


# -- one batch ---------------------------------------------------------------------


def user_text(turns: Iterable[Mapping[str, Any]]) -> str:
    return "\n".join(user_messages(turns))


def user_messages(turns: Iterable[Mapping[str, Any]]) -> list[str]:
    """What the user typed in these journal turns: no tool results, no harness blocks,
    no engram block, no command output, no harness preambles (AGENTS.md, env)."""
    parts = []
    for turn in turns:
        if turn.get("role") != "user":
            continue
        text = turn.get("text")
        if not isinstance(text, str) or not text or is_preamble(text):
            continue
        words = user_words(_COMMAND_OUTPUT.sub("", text))
        if words:
            parts.append(words)
    return parts


def all_text(turns: Iterable[Mapping[str, Any]]) -> str:
    parts: list[str] = []
    for turn in turns:
        parts.append(str(turn.get("text") or ""))
        parts.extend(str(c.get("arguments") or "") for c in turn.get("tool_calls") or ())
        parts.extend(str(r.get("content") or "") for r in turn.get("tool_results") or ())
    return "\n".join(parts)


@dataclass
class Conversation:
    """One conversation of a batch as the guard sees it."""

    key: str
    user: list[str]  # the user's own words, one message each
    text: str  # everything, for attributing commands
    candidates: set[str] = field(default_factory=set)  # retrieved by its own user turns
    applied: int = 0
    _words: set[str] | None = None

    @property
    def words(self) -> set[str]:
        if self._words is None:
            self._words = content_words(self.text)
        return self._words


@dataclass
class Decision:
    """What to do with one parsed command."""

    command: Command
    action: str  # add | supersede | forget | drop
    scope: str | None = None  # for add: "global" or the project
    review: list[Finding] = field(default_factory=list)  # non-empty: status review
    supersedes: str | None = None  # for a quarantined supersede: the memory it replaces
    rescoped: bool = False
    capped: bool = False
    reason: str | None = None  # why it was dropped


@dataclass(frozen=True)
class Target:
    """A candidate memory as the guard needs it."""

    id: str
    scope: str
    content: str


class Guard:
    """The rules above for one batch. `conversations` carry their retrieved candidates;
    `targets` are all candidates offered to the model, by id."""

    def __init__(
        self,
        project: str | None,
        conversations: Sequence[Conversation],
        targets: Mapping[str, Target],
        max_commands: int,
    ) -> None:
        self.project = project
        self.conversations = list(conversations)
        self.targets = targets
        self.max_commands = max(0, max_commands)
        self.user = [m for c in self.conversations for m in c.user]

    def decide(self, cmd: Command) -> Decision:
        conv = self._attribute(cmd)
        if conv is None:
            return Decision(cmd, "drop", reason=f"id {cmd.target} was not among the candidates")
        if conv.applied >= self.max_commands:
            return Decision(
                cmd,
                "drop",
                capped=True,
                reason=f"over the limit of {self.max_commands} commands for one conversation",
            )
        conv.applied += 1
        if cmd.action == "add":
            return self._add(cmd, cmd.text or "")
        target = self.targets[cmd.target or ""]
        if cmd.action == "forget":
            if (
                target.scope == "global"
                and self.project is not None
                and not any(asks_to_drop(target.content, m) for m in self.user)
            ):
                return Decision(
                    cmd, "drop", reason="forgetting a global memory needs the user's words"
                )
            return Decision(cmd, "forget")
        text = cmd.text or ""
        if (
            target.scope == "global"
            and self.project is not None
            and not carried_by(text, self.user)
        ):
            # Tool output may correct a project; only the user corrects what every
            # project sees. The correction is kept for this project.
            return Decision(cmd, "add", scope=self.project, rescoped=True, review=screen(text))
        findings = screen(text)
        if findings:
            return Decision(cmd, "add", scope=target.scope, review=findings, supersedes=target.id)
        return Decision(cmd, "supersede")

    def _add(self, cmd: Command, text: str) -> Decision:
        scope, rescoped = self._scope(cmd.scope, text)
        return Decision(cmd, "add", scope=scope, review=screen(text), rescoped=rescoped)

    def _scope(self, requested: str | None, text: str) -> tuple[str | None, bool]:
        if self.project is None:
            return None, False  # no project known: the runner's default (global) applies
        if requested != "global":
            return self.project, False
        if carried_by(text, self.user):
            return "global", False
        return self.project, True

    def _attribute(self, cmd: Command) -> Conversation | None:
        if cmd.action == "add":
            pool = self.conversations
        else:
            pool = [c for c in self.conversations if cmd.target in c.candidates]
            if not pool:
                return None
        if len(pool) == 1 or not cmd.text:
            return pool[0]
        words = content_words(cmd.text)
        return max(pool, key=lambda c: len(words & c.words))


def describe(decision: Decision) -> tuple[str, str | None]:
    """(what happens, why) for `engram analyze --dry-run`."""
    if decision.action == "drop":
        return ("drop" if decision.capped else "reject"), decision.reason
    why = []
    if decision.rescoped:
        why.append(f"stored in {decision.scope}: the user's own words do not carry it globally")
    if decision.review:
        why.append("; ".join(str(f) for f in decision.review))
        return "hold for review", "; ".join(why)
    return ("keep in project" if decision.rescoped else "keep"), "; ".join(why) or None


def for_batch(
    project: str | None,
    conversations: Sequence[Any],
    candidates: Sequence[Any],
    per_conversation: Mapping[str, set[str]],
    max_commands: int,
) -> Guard:
    """The guard for one batch: `conversations` as the prompt got them (project,
    conversation key, journal turns), the candidates offered and, per conversation,
    the ids its own user turns retrieved."""
    convs = [
        Conversation(
            key=c.conversation,
            user=user_messages(c.turns),
            text=all_text(c.turns),
            candidates=set(per_conversation.get(c.conversation, ())),
        )
        for c in conversations
    ]
    targets = {c.id: Target(c.id, c.scope, c.content) for c in candidates}
    for conv in convs:
        conv.candidates &= set(targets)  # offered to the model, too
    return Guard(project, convs, targets, max_commands)
