"""Certificate renewal retries by the one retry policy (``clgwd.retry``)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from clgwd.config import parse_config
from clgwd.link import renewal as renewal_module
from clgwd.link.renewal import CertificateRenewal
from clgwd.protocol.channel import LinkDown
from clgwd.retry import Backoff
from tests.retry_helpers import RecordingRandom


async def test_failed_renewals_wait_by_the_shared_policy_and_reset_on_success(
        tmp_path: Path) -> None:
    """Failures wait growing windows; a renewal that works starts the policy over; the
    loop ends when the link goes down."""
    config = parse_config(f"state: {{dir: {tmp_path}}}\n")
    due = SimpleNamespace(not_after=dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    files = SimpleNamespace(load=lambda: due)
    rng = RecordingRandom()
    renewal = CertificateRenewal(config, files,  # type: ignore[arg-type]
                                 Backoff(60.0, 1800.0, rng))
    overdue = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    renewal.deadline = lambda enrollment: overdue  # type: ignore[method-assign]
    outcomes: list[BaseException | None] = [TimeoutError(), TypeError("no certificate"),
                                            TimeoutError(), None, TimeoutError(),
                                            LinkDown("gone")]

    async def renew_once(session: Any, enrollment: Any) -> None:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    renewal._renew_once = renew_once  # type: ignore[method-assign]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(renewal_module, "RENEW_RETRY_FLOOR", 0.0)  # the test waits nothing
        await renewal.run(None)  # type: ignore[arg-type]
    assert rng.windows == [60.0, 120.0, 240.0, 60.0]
    assert not outcomes
