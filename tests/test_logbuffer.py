"""The one in-memory log buffer (logs.collect's fallback and the support bundle)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from clgwd.commands import CommandRouter
from clgwd.config import ClgwdConfig, Secret
from clgwd.logbuffer import CONSOLE_ONLY, LogBuffer, shared_buffer
from clgwd.metrics import Metrics
from clgwd.system import DaemonHooks, SystemComponent
from clgwd.web.app import OnboardingApp


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger("clgwd.test.logbuffer")
    old = log.level
    log.setLevel(logging.DEBUG)
    yield log
    log.setLevel(old)


def test_buffer_keeps_the_last_lines_without_secrets_or_setup_code(
        logger: logging.Logger) -> None:
    """Bounded to its capacity, secrets scrubbed, console-only records left out."""
    handler = LogBuffer(capacity=3)
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


def test_since_filters_by_the_records_time(logger: logging.Logger) -> None:
    """``since`` keeps the lines logged at or after the cutoff, by the record's time."""
    handler = LogBuffer()
    logger.addHandler(handler)
    try:
        for i, created in enumerate((100.0, 200.0, 300.0)):
            record = logger.makeRecord(logger.name, logging.INFO, __file__, 1,
                                       "at %d", (i,), None)
            record.created = created
            logger.handle(record)
    finally:
        logger.removeHandler(handler)
    assert [line.rsplit(": ", 1)[-1] for line in handler.since(200.0)] == ["at 1", "at 2"]
    assert handler.lines()[0].startswith("1970-01-01T00:01:40Z")


def test_attach_is_counted_so_one_reader_leaving_keeps_the_other_collecting(
        logger: logging.Logger) -> None:
    """Two readers attach the same buffer: it collects until the last one detaches."""
    handler = LogBuffer()
    handler.attach()
    handler.attach()
    try:
        handler.detach()
        logger.warning("still collected")
        assert handler in logging.getLogger().handlers
    finally:
        handler.detach()
    assert handler not in logging.getLogger().handlers
    logger.warning("not collected")
    handler.detach()  # one detach too many is harmless
    assert [line.rsplit(": ", 1)[-1] for line in handler.lines()] == ["still collected"]


def test_the_page_and_the_system_component_read_one_buffer() -> None:
    """The support bundle and logs.collect's fallback share the process's buffer."""
    hooks = DaemonHooks(config=lambda: None,  # type: ignore[arg-type,return-value]
                        config_path=None, reload=None,  # type: ignore[arg-type]
                        restart=lambda _: None)
    system = SystemComponent(None, CommandRouter(), hooks)  # type: ignore[arg-type]
    page = OnboardingApp(ClgwdConfig(), dict, None, CommandRouter(),  # type: ignore[arg-type]
                         metrics=Metrics(), https_port=lambda: None)
    assert system.log_ring is page.recent_logs is shared_buffer()
