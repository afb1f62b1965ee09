"""One exception type for every failure a user can cause or fix.

The CLI turns an `EngramError` into a one-line `error: ...` on stderr and a non-zero
exit; daemons log it and carry on. Anything else escaping is a bug.
"""

from __future__ import annotations


class EngramError(Exception):
    """A failure with a message fit to show a user as is."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class ConfigError(EngramError):
    """Bad configuration: exit code 2 so a service manager does not restart-loop on it."""

    exit_code = 2


class NotFound(EngramError):
    pass
