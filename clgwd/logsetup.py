"""Logging set-up: one line per event, journald friendly, secrets scrubbed.

Under systemd (``$JOURNAL_STREAM`` set) lines carry a ``<N>`` syslog priority prefix
and no timestamp, because journald adds both. Elsewhere they carry a UTC timestamp.
A filter replaces the plaintext of any ``Secret`` created in this process, as a second
line of defence behind the ``Secret`` type's own ``***`` rendering.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Final

from clgwd.config.secret import REDACTED, known_secret_values

LEVELS: Final = {"debug": logging.DEBUG, "info": logging.INFO,
                 "warning": logging.WARNING, "error": logging.ERROR}
_SYSLOG_PRIORITY: Final = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4,
                           logging.ERROR: 3, logging.CRITICAL: 2}


class SecretScrubber(logging.Filter):
    """Replaces known secret plaintexts in the rendered message and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = known_secret_values()
        if not secrets:
            return True
        message = record.getMessage()
        scrubbed = _scrub(message, secrets)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = _scrub(record.exc_text, secrets)
        return True


def scrub_secrets(text: str) -> str:
    """``text`` with every known secret plaintext replaced (for command output and
    journal lines, which do not pass through a logging filter)."""
    return _scrub(text, known_secret_values())


def _scrub(text: str, secrets: frozenset[str]) -> str:
    for value in sorted(secrets, key=len, reverse=True):
        if value in text:
            text = text.replace(value, REDACTED)
    return text


class JournalFormatter(logging.Formatter):
    """``<6>clgwd.store.db: message`` — journald parses the priority prefix."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record).replace("\n", "\n  ")
        return f"<{_SYSLOG_PRIORITY.get(record.levelno, 6)}>{text}"


def setup_logging(level: str) -> None:
    """Configure the root logger once for the process."""
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                                      "%Y-%m-%dT%H:%M:%SZ")
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    handler.addFilter(SecretScrubber())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    set_level(level)


def set_level(level: str) -> None:
    logging.getLogger().setLevel(LEVELS[level])
    # Third-party chatter stays at WARNING unless we debug.
    quiet = logging.DEBUG if level == "debug" else logging.WARNING
    for name in ("aiohttp.access", "websockets", "aiosqlite", "asyncio"):
        logging.getLogger(name).setLevel(max(quiet, LEVELS[level]))
