"""The support bundle's log buffer: bounded, scrubbed, no console-only lines."""

from __future__ import annotations

import logging

from clgwd.config import Secret
from clgwd.web.recentlogs import CONSOLE_ONLY, RecentLogs


def test_buffer_keeps_the_last_lines_without_secrets_or_setup_code() -> None:
    handler = RecentLogs(capacity=3)
    logger = logging.getLogger("clgwd.test.recentlogs")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        secret = Secret("recent-logs-secret")
        for i in range(4):
            logger.info("line %d", i)
        logger.info("Setup code for the first visit: %s", "ABCDE-FGHIJ", extra=CONSOLE_ONLY)
        logger.warning("token %s", secret.reveal())
    finally:
        logger.removeHandler(handler)
    lines = handler.lines()
    assert len(lines) == 3
    assert [line.rsplit(": ", 1)[-1] for line in lines] == ["line 2", "line 3", "token ***"]
    assert not any("ABCDE" in line for line in lines)
