"""What every command needs: the process's `Runtime` (engram/runtime.py, the composition
root), built lazily so that `engram --help` works with a broken config and cheap commands
stay cheap.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from engram.config import Config
    from engram.runtime import Runtime
    from engram.store.db import Store


@dataclass
class State:
    db_flag: str | None = None
    config_flag: str | None = None
    _runtime: Runtime | None = field(default=None, repr=False)

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            from engram.runtime import Runtime

            self._runtime = Runtime.load(self.config_flag, self.db_flag)
            for warning in self._runtime.config.warnings:
                sys.stderr.write(f"warning: {warning}\n")
        return self._runtime

    @property
    def config(self) -> Config:
        return self.runtime.config

    @property
    def db_path(self) -> Path:
        return self.runtime.db_path

    @property
    def store(self) -> Store:
        return self.runtime.store


def state(ctx: typer.Context) -> State:
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        root.obj = State()
    return root.obj
