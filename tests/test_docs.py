"""The reference pages are generated from the code; they must match it exactly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engram import docs_gen

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", sorted(docs_gen.PAGES))
def test_reference_page_matches_the_code(name: str) -> None:
    committed = (ROOT / "docs" / "reference" / name).read_text(encoding="utf-8")
    assert committed == docs_gen.PAGES[name]() + "\n", (
        f"docs/reference/{name} is out of date: run `python -m engram.docs_gen`"
    )


def test_readme_and_docs_links_resolve() -> None:
    for page in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]:
        for target in re.findall(r"\]\(([^)#\s]+\.md)", page.read_text(encoding="utf-8")):
            assert (page.parent / target).resolve().exists(), f"{page.name} links {target}"


def test_readme_opens_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("```", 2)[1]
    commands = [line.split("#")[0].strip() for line in block.splitlines()[1:] if line.strip()]
    assert commands == ["make demo", "make test"]
