"""mDNS: peers in other namespaces resolve the gateway by name, conflicts get -2."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.net.conftest import (
    Gateway,
    Lan,
    Procs,
    start_avahi,
    start_gateway,
    wait_for,
    zc_resolve,
)

pytestmark = [pytest.mark.netns, pytest.mark.peers]

GW_PORT = """\
ports: [{{name: eth0, mode: static, address: {address}}}]
mdns: {{enabled: true, http_port: 8080, https_port: 8443}}
"""


def published(gw: Gateway) -> Any:
    """A predicate: the gateway's mdns component status once it has published."""

    async def check() -> dict[str, Any] | None:
        mdns = (await gw.status())["mdns"]
        return mdns if mdns["details"].get("mdns_state") == "published" else None

    return check


async def test_avahi_and_zeroconf_resolve_gateway(lan: Lan, procs: Procs, tmp_path: Path) -> None:
    """A peer resolves cloudlink.local with avahi-resolve and with python-zeroconf."""
    gw_ns, peer_ns = lan.add_ns(), lan.add_ns()
    lan.attach(gw_ns)
    lan.attach(peer_ns, address="198.18.0.2/24")
    avahi = await start_avahi(procs, peer_ns, "eth0", tmp_path / "avahi")
    gw = await start_gateway(procs, gw_ns, tmp_path / "gw",
                             GW_PORT.format(address="198.18.0.10/24"))

    async def resolved() -> str | None:
        return await avahi.resolve("cloudlink.local", timeout=2)

    assert await wait_for(resolved, 10) == "198.18.0.10"
    print(f"start -> avahi resolves: {time.monotonic() - gw.started:.2f} s")
    assert await zc_resolve(peer_ns, "cloudlink.local.", "198.18.0.2") == ["198.18.0.10"]
    status = await wait_for(published(gw), 5)
    assert status["details"]["hostname"] == "cloudlink"
