"""The plain table every listing prints: at 80 columns ids, keys, dates and counts stay
whole, the free-text column wraps into what is left, and only a one-line cell over 40
characters is shortened."""

from __future__ import annotations

import pytest

from engram.cli import render


def test_a_table_keeps_what_matters_at_80_columns(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    long_text = "We deploy with make release from the main branch after CI passes " * 3
    path = "/srv/" + "deep/" * 12 + "project"
    render.table(
        ["id", "scope", "content", "created"],
        [["m-4k2p9xqa", path, long_text.strip(), "2026-12-06 14:02:11"]],
    )
    lines = capsys.readouterr().out.splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    assert lines[0].split() == ["id", "scope", "content", "created"]
    assert set(lines[1]) == {"─"}
    first = lines[2]
    assert first.startswith("m-4k2p9xqa   ") and first.endswith("2026-12-06 14:02:11")
    assert "/srv/deep/" in first and "…" in first  # the long one-line cell gave way
    words = " ".join(line[lines[0].index("content") :].split("   ")[0] for line in lines[2:])
    assert " ".join(words.split()).startswith("We deploy with make release")
    assert len(lines) > 3  # the free text wrapped, nothing dropped


def test_columns_follows_the_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    render.table(["id", "content"], [["m-1", "word " * 40]])
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) > 80 and all(len(line) <= 120 for line in lines)
