"""mDNS: peers in other namespaces resolve the gateway by name, conflicts get -2."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tests.net.conftest import (
    PYTHON,
    Avahi,
    Gateway,
    Lan,
    Procs,
    gateway_config,
    kernel,
    sh,
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
        # Components appear in the status as the daemon enters them: on a loaded host
        # the control socket can answer before the mdns component exists.
        mdns = (await gw.status()).get("mdns")
        return mdns if mdns and mdns["details"].get("mdns_state") == "published" else None

    return check


async def gateway_and_avahi_peer(lan: Lan, procs: Procs,
                                 tmp: Path) -> tuple[Gateway, Avahi, str]:
    """A gateway (static 198.18.0.10, mDNS on) and an avahi peer (198.18.0.2) on one LAN."""
    gw_ns, peer_ns = lan.add_ns(), lan.add_ns()
    lan.attach(gw_ns)
    lan.attach(peer_ns, address="198.18.0.2/24")
    avahi = await start_avahi(procs, peer_ns, "eth0", tmp / "avahi")
    gw = await start_gateway(procs, gw_ns, tmp / "gw", GW_PORT.format(address="198.18.0.10/24"))
    return gw, avahi, peer_ns


async def test_avahi_and_zeroconf_resolve_gateway(lan: Lan, procs: Procs, tmp_path: Path) -> None:
    """A peer resolves cloudlink.local with avahi-resolve and with python-zeroconf."""
    gw, avahi, peer_ns = await gateway_and_avahi_peer(lan, procs, tmp_path)

    async def resolved() -> str | None:
        return await avahi.resolve("cloudlink.local", timeout=2)

    assert await wait_for(resolved, 10) == "198.18.0.10"
    print(f"start -> avahi resolves: {time.monotonic() - gw.started:.2f} s")
    assert await zc_resolve(peer_ns, "cloudlink.local.", "198.18.0.2") == ["198.18.0.10"]
    status = await wait_for(published(gw), 5)
    assert status["details"]["hostname"] == "cloudlink"


async def test_second_gateway_gets_suffixed_name(lan: Lan, procs: Procs, tmp_path: Path) -> None:
    """A second gateway on the same LAN sees cloudlink.local taken and claims cloudlink-2."""
    gw1_ns, gw2_ns, peer_ns = lan.add_ns(), lan.add_ns(), lan.add_ns()
    for ns in (gw1_ns, gw2_ns):
        lan.attach(ns)
    lan.attach(peer_ns, address="198.18.0.2/24")
    gw1 = await start_gateway(procs, gw1_ns, tmp_path / "gw1",
                              GW_PORT.format(address="198.18.0.10/24"))
    await wait_for(published(gw1), 10)
    gw2 = await start_gateway(procs, gw2_ns, tmp_path / "gw2",
                              GW_PORT.format(address="198.18.0.11/24"))
    status = await wait_for(published(gw2), 10)
    assert status["details"]["hostname"] == "cloudlink-2"
    assert await zc_resolve(peer_ns, "cloudlink-2.local.", "198.18.0.2") == ["198.18.0.11"]
    assert await zc_resolve(peer_ns, "cloudlink.local.", "198.18.0.2") == ["198.18.0.10"]
    # The choice is persisted: after a restart gw2 keeps its name without a conflict.
    await procs.stop(gw2.proc)
    gw2 = await start_gateway(procs, gw2_ns, tmp_path / "gw2",
                              GW_PORT.format(address="198.18.0.11/24"))
    status = await wait_for(published(gw2), 10)
    assert status["details"]["hostname"] == "cloudlink-2"


async def test_readdress_is_announced(lan: Lan, procs: Procs, tmp_path: Path) -> None:
    """After the port's address changes, peers resolve the new address."""
    gw, avahi, peer_ns = await gateway_and_avahi_peer(lan, procs, tmp_path)
    await wait_for(published(gw), 10)
    assert await wait_for(lambda: avahi.resolve("cloudlink.local", 2), 5) == "198.18.0.10"

    gateway_config(gw.dir, GW_PORT.format(address="198.18.0.20/24"))
    start = time.monotonic()
    status, body = await gw.request("POST", "/v1/reload")
    assert status == 200, body

    async def moved() -> bool:
        return await avahi.resolve("cloudlink.local", 2) == "198.18.0.20"

    await wait_for(moved, 5)
    print(f"readdress -> avahi resolves the new address: {time.monotonic() - start:.2f} s")
    assert await zc_resolve(peer_ns, "cloudlink.local.", "198.18.0.2") == ["198.18.0.20"]


async def test_goodbyes_on_readdress_and_shutdown(lan: Lan, procs: Procs,
                                                  tmp_path: Path) -> None:
    """On the wire: the old address gets a goodbye (TTL 0) when the port is readdressed,
    the new one is announced, and SIGTERM sends a goodbye for it."""
    gw_ns, peer_ns = lan.add_ns(), lan.add_ns()
    lan.attach(gw_ns)
    lan.attach(peer_ns, address="198.18.0.2/24")
    log = tmp_path / "records.log"
    await procs.start(PYTHON, str(Path(__file__).with_name("mdns_records.py")), "198.18.0.2",
                      "cloudlink.local.", ns=peer_ns, log=log)
    await wait_for(lambda: _contains(log, "ready"), 10)
    gw = await start_gateway(procs, gw_ns, tmp_path / "gw",
                             GW_PORT.format(address="198.18.0.10/24"))
    await wait_for(published(gw), 10)
    gateway_config(gw.dir, GW_PORT.format(address="198.18.0.20/24"))
    assert (await gw.request("POST", "/v1/reload"))[0] == 200
    await wait_for(lambda: _contains(log, '{"address": "198.18.0.20", "ttl": 120}'), 5)
    assert await _contains(log, '{"address": "198.18.0.10", "ttl": 0}')
    assert await procs.stop(gw.proc) == 0
    await wait_for(lambda: _contains(log, '{"address": "198.18.0.20", "ttl": 0}'), 5)


async def _contains(path: Path, text: str) -> bool:
    return path.exists() and text in path.read_text()


async def test_link_up_recheck_moves_newcomer(lan: Lan, procs: Procs, tmp_path: Path) -> None:
    """A gateway that claimed cloudlink.local while unplugged re-checks when its link comes
    up, finds the name taken and moves to cloudlink-2; the established owner keeps it."""
    gw1_ns, gw2_ns, peer_ns = lan.add_ns(), lan.add_ns(), lan.add_ns()
    lan.attach(gw1_ns)
    lan.attach(peer_ns, address="198.18.0.2/24")
    lan.attach(gw2_ns)
    lan.unplug(3)  # gw2's cable is out
    gw1 = await start_gateway(procs, gw1_ns, tmp_path / "gw1",
                              GW_PORT.format(address="198.18.0.10/24"))
    gw2 = await start_gateway(procs, gw2_ns, tmp_path / "gw2",
                              GW_PORT.format(address="198.18.0.11/24"))
    assert (await wait_for(published(gw1), 10))["details"]["hostname"] == "cloudlink"
    assert (await wait_for(published(gw2), 10))["details"]["hostname"] == "cloudlink"
    lan.plug(3)

    async def renamed() -> bool:
        status = await published(gw2)()
        return status is not None and status["details"]["hostname"] == "cloudlink-2"

    await wait_for(renamed, 10)
    await asyncio.sleep(2.5)  # gw1 re-probes after hearing gw2 and must keep its name
    assert (await gw1.status())["mdns"]["details"]["hostname"] == "cloudlink"
    assert await zc_resolve(peer_ns, "cloudlink.local.", "198.18.0.2") == ["198.18.0.10"]
    assert await zc_resolve(peer_ns, "cloudlink-2.local.", "198.18.0.2") == ["198.18.0.11"]


async def test_no_address_waits_instead_of_failing(lan: Lan, procs: Procs, tmp_path: Path) -> None:
    """mDNS enabled but no IPv4 address yet: the component waits (degraded), the daemon
    runs, and it publishes as soon as an address appears."""
    ns = lan.add_ns()
    lan.attach(ns)
    gw = await start_gateway(procs, ns, tmp_path / "gw", "mdns: {enabled: true}\n")

    async def waiting() -> bool:
        mdns = (await gw.status()).get("mdns")  # absent until the component has started
        return mdns is not None and mdns["state"] == "degraded" and \
            "no IPv4 address" in mdns["message"]

    await wait_for(waiting, 5)
    sh("ip", "-n", ns, "addr", "add", "198.18.0.10/24", "dev", "eth0")
    status = await wait_for(published(gw), 5)
    assert status["details"]["hostname"] == "cloudlink"


async def test_link_local_ipv6_is_published_as_aaaa(lan: Lan, procs: Procs,
                                                   tmp_path: Path) -> None:
    """With IPv6 on the port, its link-local address is published next to the IPv4 one."""
    gw_ns, peer_ns = lan.add_ns(), lan.add_ns()
    lan.attach(gw_ns, ipv6=True)
    lan.attach(peer_ns, address="198.18.0.2/24")

    async def link_local() -> str | None:
        for link in kernel(gw_ns, "-6", "addr", "show", "eth0"):
            for a in link["addr_info"]:
                if a["scope"] == "link" and not a.get("tentative"):
                    return str(a["local"])
        return None

    fe80 = await wait_for(link_local, 10)
    gw = await start_gateway(procs, gw_ns, tmp_path / "gw",
                             GW_PORT.format(address="198.18.0.10/24"))
    await wait_for(published(gw), 10)
    assert sorted(await zc_resolve(peer_ns, "cloudlink.local.", "198.18.0.2")) == \
        sorted(["198.18.0.10", fe80])
