"""The network part's retrying loops use the one retry policy (``clgwd.retry``).

The policy is injected with a random source that records the windows asked for and
waits nothing, so the tests read the sequence of windows instead of timing sleeps.
No root, no namespaces: the failing peer (zeroconf, the DHCP client) is replaced.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from clgwd.config import parse_config
from clgwd.net import netlink
from clgwd.net.advertiser import MdnsAdvertiser
from clgwd.net.component import NetworkComponent
from clgwd.retry import Backoff
from clgwd.store import Store
from tests.retry_helpers import RecordingRandom


class StopLoop(BaseException):
    """Ends the loop under test (a BaseException, so no retry handler catches it)."""


async def test_dhcp_supervision_retries_by_the_shared_policy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A DHCP client that keeps failing is restarted after growing, capped windows."""
    config = parse_config(f"state: {{dir: {tmp_path}}}\n"
                          "network: {ports: [{name: lan0, mode: dhcp}]}\n")
    starts = 0

    @contextlib.asynccontextmanager
    async def failing_client(*args: Any, **kwargs: Any) -> AsyncIterator[None]:
        nonlocal starts
        starts += 1
        if starts == 6:
            raise StopLoop
        raise OSError("no such device")
        yield  # pragma: no cover - never reached

    async def set_up(index: int) -> None:
        return None

    monkeypatch.setattr(netlink, "dhcp_client", failing_client)
    rng = RecordingRandom()
    async with Store(config) as store:
        net = NetworkComponent(config, store)
        net.dhcp_retry = lambda: Backoff(1.0, 8.0, rng)
        net._links["lan0"] = SimpleNamespace(index=7, carrier=True)  # type: ignore[assignment]
        net._netlink = SimpleNamespace(set_up=set_up)  # type: ignore[assignment]
        with pytest.raises(StopLoop):
            await net._run_dhcp(config.network.ports[0])
    assert rng.windows == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert "DHCP client failed" in net._errors["lan0"]


async def test_mdns_advertiser_retries_by_the_shared_policy_and_resets(
        tmp_path: Path) -> None:
    """mDNS failures wait growing windows; a step that works starts over from the base."""
    config = parse_config(f"state: {{dir: {tmp_path}}}\n"
                          "network: {mdns: {enabled: true}}\n")
    outcomes: list[BaseException | None] = [OSError("bind"), OSError("bind"), None,
                                            OSError("bind"), StopLoop()]

    async def step() -> None:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    rng = RecordingRandom()
    async with Store(config) as store:
        net = NetworkComponent(config, store)
        mdns = MdnsAdvertiser(config, net, store.settings, retry=Backoff(1.0, 60.0, rng))
        mdns._step = step  # type: ignore[method-assign]
        async with mdns:
            with pytest.raises(StopLoop):
                await mdns.run()
    assert rng.windows == [1.0, 2.0, 1.0]
    assert not outcomes
