"""Reading meaning out of prompt text: the user's own words, and the project directory.

Agents wrap the user's words in harness context (Claude Code's `<system-reminder>`,
Codex's `<environment_context>`, Gemini CLI's setup message), and our own injected
block may sit anywhere a proxy put it. Memories must come from what the user said, so
`user_words` removes all of that; `Turn.text` keeps it verbatim for stable fingerprints.

Where each agent states its working directory (checked in this order, first hit wins):

- Claude Code: a system block line `Primary working directory: /path` (older versions
  and opencode: `Working directory: /path` inside `<env>`).
- Codex: `<cwd>/path</cwd>` inside `<environment_context>`, sent as a user message.
- Gemini CLI (and its fork Qwen Code): the first user message, "I'm currently working
  in the directory: /path"; newer versions wrap it in `<session_context>` and list
  `- **Workspace Directories:**` followed by `  - /path` lines (the first one is used).
- Anything else that writes `Current working directory: /path`.
"""

from __future__ import annotations

import re

from engram.wire.block import remove_block

_HARNESS_BLOCK = re.compile(
    r"<(system-reminder|environment_context|user_instructions|session_context)>"
    r".*?</\1>",
    re.DOTALL,
)
_EXTRA_BLANK_LINES = re.compile(r"\n{3,}")
# What a harness adds around or between the user's words in one door and not in another:
# Claude Code writes slash commands, their output, `!` shell commands and background-task
# notices into its transcript as tagged text, and on the wire merges them (plus reminders)
# into the next user message, sometimes re-wrapped. Identity across doors ignores them.
_MARKUP_BLOCK = re.compile(
    r"<(system-reminder|environment_context|user_instructions|session_context"
    r"|local-command-caveat|command-name|command-message|command-args|command-stdout"
    r"|local-command-stdout|local-command-stderr|bash-input|bash-stdout|bash-stderr"
    r"|task-notification|user-prompt-submit-hook)>.*?</\1>",
    re.DOTALL,
)

# (literal anchor, pattern applied from the anchor): the literal lets a 20 KB system
# prompt be searched with `str.find` instead of a regex scan per pattern.
_PROJECT_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Primary working directory:", re.compile(r"Primary working directory:[ \t]*([^\n]+)")),
    ("<cwd>", re.compile(r"<cwd>\s*([^<\n]+?)\s*</cwd>")),
    (
        "currently working in the directory:",
        re.compile(r"currently working in the directory:[ \t]*([^\n]+)"),
    ),
    (
        "Workspace Directories:",
        re.compile(r"Workspace Directories:\**[ \t]*\n[ \t]*-[ \t]*([^\n]+)"),
    ),
    ("Working directory:", re.compile(r"(?m)^[ \t]*Working directory:[ \t]*([^\n]+)")),
    ("Current working directory:", re.compile(r"Current working directory:[ \t]*([^\n]+)")),
)

# Harness messages that open a session before the user says anything.
_PREAMBLE_MARKERS = (
    "<environment_context>",
    "<user_instructions>",
    "<session_context>",
    "<permissions instructions>",
    "# AGENTS.md instructions",
    "This is the Gemini CLI. We are setting up the context",
)


def user_words(text: str) -> str:
    """What the user actually wrote: `text` without harness blocks or engram's block."""
    if "<" in text:
        text = remove_block(text)
        text = _HARNESS_BLOCK.sub("", text)
        text = _EXTRA_BLANK_LINES.sub("\n\n", text)
    return text.strip()


def identity_text(text: str) -> str:
    """The part of a turn's text that is the same whichever door it came through: no
    engram block, no harness markup, whitespace collapsed. Used for fingerprints only,
    never shown: it keeps the user's and the model's words and nothing else."""
    if "<" in text:
        text = _MARKUP_BLOCK.sub(" ", remove_block(text))
    return " ".join(text.split())  # 5x faster than a regex on a large tool output


def project_from_system(system_text: str) -> str | None:
    """The agent's working directory as stated in a prompt text, or None.

    Despite the name this is applied to the first user messages too, because Codex and
    Gemini CLI state the directory there rather than in the system prompt.
    """
    for anchor, pattern in _PROJECT_PATTERNS:
        start = system_text.find(anchor)
        if start < 0:
            continue
        # Back up to the line start so `^`-anchored patterns can match.
        line_start = system_text.rfind("\n", 0, start) + 1
        match = pattern.search(system_text, line_start)
        if match:
            path = match.group(1).strip().strip("`'\"").rstrip()
            if path:
                return path
    return None


def is_preamble(text: str) -> bool:
    """Whether a user message is harness setup rather than the user's first request."""
    head = text.lstrip()[:200]
    return any(head.startswith(marker) or marker in head for marker in _PREAMBLE_MARKERS)
