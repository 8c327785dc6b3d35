"""Errors with a stable code, a message and an HTTP status.

The web layer turns any ``ClgwdError`` into ``{"code": ..., "message": ...}``; the CLI
prints the message; nobody shows a traceback to an operator for an expected failure.
"""

from __future__ import annotations

from typing import ClassVar, Final

# Process exit statuses (sysexits.h where one fits), shared by the daemon and the CLI.
EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_CONFIG: Final = 78
"""EX_CONFIG: the config file is invalid."""
EXIT_RESTART: Final = 75
"""EX_TEMPFAIL: "start me again" (factory reset); the unit's Restart=on-failure does."""
EXIT_UNAVAILABLE: Final = 69
"""EX_UNAVAILABLE: the daemon is not running (CLI commands that need it)."""


class ClgwdError(Exception):
    """Base class of every expected, operator-facing error."""

    code: ClassVar[str] = "internal_error"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StartupError(ClgwdError):
    """The daemon cannot start (bad state dir, port in use, corrupted database, ...)."""

    code = "startup_failed"


class StateError(ClgwdError):
    """The state database is unusable (corrupted, too new, not writable)."""

    code = "state_unusable"
    http_status = 503


class NotSupportedYet(ClgwdError):
    """A capability that this build does not implement yet; never a silent success."""

    code = "not_supported_yet"
    http_status = 501
