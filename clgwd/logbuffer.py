"""The process's recent log lines, kept in memory: one buffer for every reader.

The daemon logs to stderr (the journal). Two readers need recent lines without the
journal: ``logs.collect`` falls back to them when the journal cannot be read, and the
page's support bundle includes them. Both read the one buffer ``shared_buffer()``
returns, attached to the root logger while at least one of them runs.

Each line keeps its record's time, so ``since()`` can filter by age. Known secret
values are scrubbed (as on stderr), and records marked ``console_only`` (the setup
code) never enter the buffer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Final

from clgwd.logsetup import SecretScrubber

CAPACITY: Final = 5000
CONSOLE_ONLY: Final = {"console_only": True}
"""``extra=`` for a record meant for the console only, never for a buffer or bundle."""


class LogBuffer(logging.Handler):
    """The last ``capacity`` records of this process, formatted, with their times."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        super().__init__(logging.DEBUG)
        self._records: deque[tuple[float, str]] = deque(maxlen=capacity)
        self._users = 0
        self._users_lock = threading.Lock()
        formatter = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                                      "%Y-%m-%dT%H:%M:%SZ")
        formatter.converter = time.gmtime
        self.setFormatter(formatter)
        self.addFilter(SecretScrubber())

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "console_only", False):
            return
        try:
            self._records.append((record.created, self.format(record)))
        except Exception:  # logging must never raise into the caller
            self.handleError(record)

    def lines(self) -> list[str]:
        """Every kept line, oldest first."""
        return [line for _, line in list(self._records)]

    def since(self, cutoff: float) -> list[str]:
        """The kept lines logged at or after ``cutoff`` (a Unix time), oldest first."""
        return [line for at, line in list(self._records) if at >= cutoff]

    def attach(self) -> None:
        """Start collecting from the root logger; each ``attach`` needs a ``detach``."""
        with self._users_lock:
            self._users += 1
            if self._users == 1:
                logging.getLogger().addHandler(self)

    def detach(self) -> None:
        """Stop collecting once the last user has detached (the lines stay)."""
        with self._users_lock:
            if self._users == 0:
                return
            self._users -= 1
            if self._users == 0:
                logging.getLogger().removeHandler(self)


_SHARED: LogBuffer | None = None
_SHARED_LOCK = threading.Lock()


def shared_buffer() -> LogBuffer:
    """The process's one buffer (created on first use)."""
    global _SHARED  # noqa: PLW0603 - one buffer per process, by design
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = LogBuffer()
        return _SHARED
