"""The wheel must carry every package, including migrations/ as engram.migrations."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_every_package_is_listed_in_pyproject() -> None:
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "engram").rglob("__init__.py")
    }
    found |= {"engram.migrations", "engram.migrations.versions"}
    assert found == listed


def test_migrations_importable_as_package() -> None:
    import engram.migrations

    assert (Path(engram.migrations.__file__).parent / "versions" / "0001_initial.py").exists()
