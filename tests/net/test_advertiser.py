"""The mDNS advertiser's name choice, against an in-memory responder (no sockets)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from pathlib import Path
from typing import Any

import pytest

from clgwd.config import parse_config
from clgwd.net import mdns
from clgwd.net.advertiser import HOSTNAME_KEY, MdnsAdvertiser, MdnsState


class FakeResponder:
    """Nobody else answers for any name: the device we once conflicted with has left."""

    def __init__(self, addresses: list[Any]) -> None:
        self.addresses = list(addresses)
        self.probed: list[str] = []

    async def start(self) -> None:
        pass

    async def probe_host(self, label: str, timeout: float, services: Any) -> set[str]:
        self.probed.append(label)
        return set()

    async def publish(self, label: str, services: Any, on_conflict: Any) -> None:
        pass

    async def update_addresses(self, addresses: list[Any]) -> None:
        self.addresses = list(addresses)

    async def close(self) -> None:
        pass


class FakeNetwork:
    def subscribe(self, callback: Any) -> None:
        pass

    async def addresses(self, include_unconfigured: bool = False) -> list[tuple[str, Any]]:
        info = type("Info", (), {"ip": ipaddress.ip_address("192.0.2.10")})()
        return [("eth0", info)]


class MemorySettings:
    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    async def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def set(self, key: str, value: Any) -> None:
        self.values[key] = value


async def test_stored_suffixed_name_is_kept_after_a_restart(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A gateway that had to take cloudlink-2 keeps it after a restart, even though the
    device that held cloudlink has gone: the stored name is probed first and kept."""
    monkeypatch.setattr(mdns, "MdnsResponder", FakeResponder)
    config = parse_config(f"state: {{dir: {tmp_path}}}\n"
                          "network: {mdns: {enabled: true, debounce: 0.01}}\n")
    settings = MemorySettings({HOSTNAME_KEY: "cloudlink-2"})
    async with MdnsAdvertiser(config, FakeNetwork(), settings) as adv:  # type: ignore[arg-type]
        task = asyncio.create_task(adv.run(), name="test-mdns")
        try:
            async with asyncio.timeout(5):
                while adv.state is not MdnsState.PUBLISHED:
                    await asyncio.sleep(0.01)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert adv.hostname == "cloudlink-2"
    assert settings.values[HOSTNAME_KEY] == "cloudlink-2"
