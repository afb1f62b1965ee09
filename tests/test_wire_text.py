"""User words and project extraction for each agent's prompt conventions."""

from __future__ import annotations

import pytest

from engram.wire.block import wrap_block
from engram.wire.text import is_preamble, project_from_system, user_words


def test_user_words_drops_reminders_harness_blocks_and_engram_block() -> None:
    text = (
        "<system-reminder>\nContext the harness added.\n</system-reminder>\n\n"
        "Please rename the field.\n\n"
        f"{wrap_block('- memory')}\n\n"
        "<system-reminder>another</system-reminder>"
    )
    assert user_words(text) == "Please rename the field."
    assert user_words("<environment_context>\n  <cwd>/x</cwd>\n</environment_context>") == ""
    assert user_words("  plain words  ") == "plain words"
    assert user_words("a < b and c > d") == "a < b and c > d"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Claude Code 2.x
        (
            "Here is useful information:\n<env>\nWorking directory: /old\n"
            "Primary working directory: /home/dev/acme-api\nIs directory a git repo: Yes\n</env>",
            "/home/dev/acme-api",
        ),
        # opencode / older Claude Code
        (
            "You are opencode.\n<env>\n  Working directory: /srv/site\n  Platform: linux\n</env>",
            "/srv/site",
        ),
        # Codex environment_context
        (
            "<environment_context>\n  <cwd>/home/dev/shop</cwd>\n  <shell>bash</shell>\n"
            "</environment_context>",
            "/home/dev/shop",
        ),
        # Gemini CLI, legacy setup message
        (
            "This is the Gemini CLI. We are setting up the context for our chat.\n"
            "I'm currently working in the directory: /Users/me/My Project\nHere is the folder",
            "/Users/me/My Project",
        ),
        # Gemini CLI, <session_context> with workspace directories
        (
            "<session_context>\nThis is the Gemini CLI.\n- **Workspace Directories:**\n"
            "  - /home/dev/garden\n  - /home/dev/lib\n- **Directory Structure:**\n",
            "/home/dev/garden",
        ),
        ("Current working directory: C:\\Users\\me\\proj\r", "C:\\Users\\me\\proj"),
        ("No directory here.", None),
        ("Primary working directory:   \n", None),
    ],
)
def test_project_from_system(text: str, expected: str | None) -> None:
    assert project_from_system(text) == expected


def test_preamble_markers() -> None:
    assert is_preamble("<environment_context>\n  <cwd>/x</cwd>")
    assert is_preamble("# AGENTS.md instructions for /x\n\n<INSTRUCTIONS>")
    assert is_preamble("This is the Gemini CLI. We are setting up the context for our chat.")
    assert not is_preamble("Fix the environment_context parser please")
