"""The last log lines, kept in memory for the support bundle.

The daemon logs to stderr (the journal); the page cannot read the journal without
privileges the daemon should not need, so the web part keeps the recent lines itself.
Known secret values are scrubbed as on stderr, and records marked ``console_only``
(the setup code) never enter the buffer.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Final

from clgwd.logsetup import SecretScrubber

CONSOLE_ONLY: Final = {"console_only": True}
"""``extra=`` for a record meant for the console only, never for a support bundle."""


class RecentLogs(logging.Handler):
    def __init__(self, capacity: int = 2000) -> None:
        super().__init__(logging.DEBUG)
        self._lines: deque[str] = deque(maxlen=capacity)
        self.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"))
        self.addFilter(SecretScrubber())

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "console_only", False):
            return
        try:
            self._lines.append(self.format(record))
        except Exception:  # logging must never raise into the caller
            self.handleError(record)

    def lines(self) -> list[str]:
        return list(self._lines)

    def attach(self) -> None:
        logging.getLogger().addHandler(self)

    def detach(self) -> None:
        logging.getLogger().removeHandler(self)
