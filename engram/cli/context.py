"""What every command needs: the effective config and the store, built lazily so that
`engram --help` works with a broken config and cheap commands stay cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from engram.config import Config
    from engram.store.db import Store


@dataclass
class State:
    db_flag: str | None = None
    config_flag: str | None = None
    _config: Config | None = field(default=None, repr=False)
    _store: Store | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        if self._config is None:
            from engram import config

            cfg = config.load(self.config_flag)
            cfg.override("store.path", self.db_flag)
            self._config = cfg
        return self._config

    @property
    def db_path(self) -> Path:
        from engram.paths import default_db_path

        return Path(self.config.store.path or default_db_path()).expanduser()

    @property
    def store(self) -> Store:
        if self._store is None:
            from engram.store.db import Store

            self._store = Store(self.db_path, self.config.store.busy_timeout_ms)
        return self._store


def state(ctx: typer.Context) -> State:
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        root.obj = State()
    return root.obj
