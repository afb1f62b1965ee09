"""What a daemon says while it runs: rich lines for a terminal, JSON lines for a log
pipeline (`--log-json`), or only errors (`--quiet`). Polls that find nothing say nothing,
so a service's log stays readable after a day of idle polling.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


class Reporter:
    def __init__(
        self, *, quiet: bool = False, log_json: bool = False, stderr: bool = False
    ) -> None:
        self.quiet = quiet
        self.log_json = log_json
        # `engram run` reports on stderr: the agent's stdout is the user's (`| jq`).
        self.stderr = stderr
        self._console: Any = None

    @property
    def console(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self.stderr, highlight=False)
        return self._console

    def event(self, name: str, message: str, *, level: str = "info", **fields: Any) -> None:
        if self.log_json:
            record = {
                "ts": round(time.time(), 3),
                "level": level,
                "event": name,
                "message": message,
                **fields,
            }
            stream = sys.stderr if level == "error" or self.stderr else sys.stdout
            stream.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
            stream.flush()
            return
        if level == "error":
            sys.stderr.write(f"error: {message}\n")
            sys.stderr.flush()
            return
        if self.quiet:
            return
        style = {"warning": "yellow", "success": "green"}.get(level, "")
        self.console.print(
            f"[{style}]{message}[/]" if style else message,
            markup=bool(style),
            highlight=False,
            soft_wrap=True,
        )

    def banner(self, title: str, settings: dict[str, Any]) -> None:
        if self.log_json:
            self.event("start", title, **settings)
            return
        if self.quiet:
            return
        self.console.print(f"[bold]{title}[/]")
        for key, value in settings.items():
            self.console.print(f"   {key}: {value}", highlight=False, markup=False)

    def warn(self, name: str, message: str, **fields: Any) -> None:
        self.event(name, message, level="warning", **fields)

    def error(self, name: str, message: str, **fields: Any) -> None:
        self.event(name, message, level="error", **fields)
