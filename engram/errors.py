"""One exception type for every failure a user can cause or fix.

The CLI turns an `EngramError` into a one-line `error: ...` on stderr and a non-zero
exit; daemons log it and carry on. Anything else escaping is a bug.
"""

from __future__ import annotations

import logging


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


# -- saying an unexpected error without the data it carries ------------------------------


def one_line(exc: BaseException) -> str:
    """The database's own error in one line: SQLAlchemy's text would add the statement
    and its parameters, which hold conversation text."""
    cause = getattr(exc, "orig", None) or exc
    text = str(cause)
    return f"{type(cause).__name__}: {text.splitlines()[0] if text else ''}"


def log_failure(logger: logging.Logger, what: str, exc: BaseException) -> None:
    """One error line with the database's own error (`one_line`); the traceback only at
    debug level. A failed write's exception text carries SQLAlchemy's statement and its
    parameters, which hold conversation text, and logs are not redacted."""
    logger.error("%s: %s", what, one_line(exc))
    logger.debug("%s", what, exc_info=exc)
