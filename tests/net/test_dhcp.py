"""DHCP on a port: lease, route and DNS from dnsmasq in a peer namespace; renew; expiry
(from busybox udhcpd, which hands out leases shorter than dnsmasq's two-minute floor)."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_program
from tests.net.conftest import (
    Gateway,
    Lan,
    Procs,
    gateway_config,
    kernel,
    kernel_v4,
    start_gateway,
    wait_for,
    zc_resolve,
)

pytestmark = [pytest.mark.netns, pytest.mark.peers]

SERVER_MAC = "02:00:00:00:00:01"
GW_MAC = "02:00:00:00:00:42"


async def start_dnsmasq(procs: Procs, ns: str, tmp: Path, *, lease: str = "120s",
                        t1: int | None = None) -> Path:
    """dnsmasq (DHCP only) in ``ns`` on eth0; returns its log path."""
    require_program("dnsmasq")
    tmp.mkdir(parents=True, exist_ok=True)
    conf = tmp / "dnsmasq.conf"
    lines = f"""\
        port=0
        interface=eth0
        bind-interfaces
        dhcp-range=198.18.0.100,198.18.0.150,255.255.255.0,{lease}
        dhcp-option=option:router,198.18.0.1
        dhcp-option=option:dns-server,198.18.0.53,198.18.0.54
        dhcp-leasefile={tmp / 'leases'}
        dhcp-authoritative
        log-dhcp
        no-ping
        """
    if t1 is not None:
        lines += f"dhcp-option=option:T1,{t1}\ndhcp-option=option:T2,{t1 * 2}\n"
    conf.write_text(textwrap.dedent(lines))
    log = tmp / "dnsmasq.log"
    await procs.start("dnsmasq", "--keep-in-foreground", "--no-daemon", f"--conf-file={conf}",
                      f"--pid-file={tmp / 'pid'}", "--log-facility=-", ns=ns, log=log)
    return log


async def start_udhcpd(procs: Procs, ns: str, tmp: Path, *,
                       lease_s: int) -> asyncio.subprocess.Process:
    """busybox udhcpd in ``ns`` on eth0, leasing for ``lease_s`` seconds (dnsmasq never
    leases for less than two minutes), logging to ``tmp/udhcpd.log``."""
    busybox = require_program("busybox")
    tmp.mkdir(parents=True, exist_ok=True)
    conf = tmp / "udhcpd.conf"
    conf.write_text(textwrap.dedent(f"""\
        start 198.18.0.100
        end 198.18.0.150
        interface eth0
        lease_file {tmp / 'leases'}
        pidfile {tmp / 'pid'}
        min_lease {lease_s}
        opt subnet 255.255.255.0
        opt router 198.18.0.1
        opt dns 198.18.0.53 198.18.0.54
        opt lease {lease_s}
        """))
    return await procs.start(busybox, "udhcpd", "-f", str(conf), ns=ns,
                             log=tmp / "udhcpd.log")


def port_state(status: dict[str, Any]) -> dict[str, Any]:
    return dict(status["network"]["details"]["ports"][0])


def bound(gw: Gateway, *, with_route: bool = False) -> Any:
    """Wait for a leased address (and, with ``with_route``, the lease's default route:
    the kernel shows the address a moment before the route is added)."""
    async def check() -> dict[str, Any] | None:
        port = port_state(await gw.status())
        if not port["addresses"] or (with_route and not port["gateway"]):
            return None
        return port
    return check


DHCP_PORT = "ports: [{name: eth0, mode: dhcp}]\n"


async def test_lease_route_and_dns(lan: Lan, procs: Procs, tmp_path: Path) -> None:
    """The gateway gets an address, a default route and DNS servers from dnsmasq."""
    server, gw_ns = lan.add_ns(), lan.add_ns()
    lan.attach(server, address="198.18.0.1/24", mac=SERVER_MAC)
    lan.attach(gw_ns, mac=GW_MAC)
    await start_dnsmasq(procs, server, tmp_path / "dnsmasq")
    gw = await start_gateway(procs, gw_ns, tmp_path / "gw", DHCP_PORT)
    port = await wait_for(bound(gw, with_route=True), 15)
    address = port["addresses"][0]
    assert address.startswith("198.18.0.1") and address.endswith("/24")
    assert port["gateway"] == "198.18.0.1"
    assert port["dns"] == ["198.18.0.53", "198.18.0.54"]
    assert kernel_v4(gw_ns) == [address]
    routes = kernel(gw_ns, "-4", "route", "show", "default")
    assert [(r["gateway"], r["dev"]) for r in routes] == [("198.18.0.1", "eth0")]
    resolv = (gw.dir / "resolv.conf").read_text()
    assert "nameserver 198.18.0.53\nnameserver 198.18.0.54\n" in resolv
    lease = json.loads((gw.dir / "state" / "dhcp" / "eth0.lease.json").read_text())
    assert lease["interface"] == "eth0" and lease["ack"]["yiaddr"] == address.split("/")[0]
    assert not list(Path.cwd().glob("*.lease.json")), "no lease file in the working directory"

    # Stopping the daemon releases the lease and removes the address.
    await procs.stop(gw.proc)
    assert kernel_v4(gw_ns) == []
    assert "DHCPRELEASE" in (tmp_path / "dnsmasq" / "dnsmasq.log").read_text()


async def test_lease_is_renewed(lan: Lan, procs: Procs, tmp_path: Path) -> None:
    """At T1 the gateway renews with a unicast REQUEST and keeps its address."""
    server, gw_ns = lan.add_ns(), lan.add_ns()
    lan.attach(server, address="198.18.0.1/24", mac=SERVER_MAC)
    lan.attach(gw_ns, mac=GW_MAC)
    log = await start_dnsmasq(procs, server, tmp_path / "dnsmasq", t1=2)
    gw = await start_gateway(procs, gw_ns, tmp_path / "gw", DHCP_PORT)
    first = (await wait_for(bound(gw), 15))["addresses"][0]

    async def renewed() -> bool:
        return log.read_text().count(f"DHCPACK(eth0) {first.split('/')[0]} {GW_MAC}") >= 2

    await wait_for(renewed, 10)
    port = port_state(await gw.status())
    assert port["addresses"] == [first]
    assert port["dhcp_state"] == "bound"
    assert kernel_v4(gw_ns) == [first]


LEASE_S = 16
"""The expiry test's lease: T1 at 8 s and T2 at 14 s go unanswered, expiry at 16 s."""


async def test_lease_expires_when_server_is_gone(lan: Lan, procs: Procs, tmp_path: Path) -> None:
    """With the server gone, the lease runs out: address, route and DNS are withdrawn."""
    server, gw_ns = lan.add_ns(), lan.add_ns()
    lan.attach(server, address="198.18.0.1/24", mac=SERVER_MAC)
    lan.attach(gw_ns, mac=GW_MAC)
    server_proc = await start_udhcpd(procs, server, tmp_path / "udhcpd", lease_s=LEASE_S)
    gw = await start_gateway(procs, gw_ns, tmp_path / "gw", DHCP_PORT)
    leased = await wait_for(bound(gw, with_route=True), 15)
    assert leased["gateway"] == "198.18.0.1"
    await procs.stop(server_proc)  # T1 renew and T2 rebind go unanswered from now on

    async def expired() -> dict[str, Any] | None:
        port = port_state(await gw.status())
        return port if not port["addresses"] and port["error"] else None

    port = await wait_for(expired, LEASE_S + 30, interval=0.5)
    assert "expired" in port["error"]
    assert kernel_v4(gw_ns) == []
    assert kernel(gw_ns, "-4", "route", "show", "default") == []


async def test_carrier_loss_is_reported_and_return_renews(lan: Lan, procs: Procs,
                                                           tmp_path: Path) -> None:
    """Unplugged: status says no carrier and the lease is kept; plugged back: the gateway
    renews at once instead of waiting for T1."""
    server, gw_ns = lan.add_ns(), lan.add_ns()
    lan.attach(server, address="198.18.0.1/24", mac=SERVER_MAC)
    lan.attach(gw_ns, mac=GW_MAC)
    log = await start_dnsmasq(procs, server, tmp_path / "dnsmasq")  # T1 = 60 s
    gw = await start_gateway(procs, gw_ns, tmp_path / "gw", DHCP_PORT)
    address = (await wait_for(bound(gw), 15))["addresses"][0]
    lan.unplug(2)

    async def no_carrier() -> dict[str, Any] | None:
        status = (await gw.status())["network"]
        return status if "no carrier" in status["message"] else None

    status = await wait_for(no_carrier, 5)
    assert status["state"] == "degraded"
    assert port_state(await gw.status())["addresses"] == [address]
    lan.plug(2)
    ack = f"DHCPACK(eth0) {address.split('/')[0]} {GW_MAC}"

    async def renewed() -> bool:
        return log.read_text().count(ack) >= 2

    await wait_for(renewed, 5)
    assert kernel_v4(gw_ns) == [address]


async def test_leased_address_is_published_over_mdns(lan: Lan, procs: Procs,
                                                     tmp_path: Path) -> None:
    """The appliance flow: DHCP gives the address, mDNS publishes cloudlink.local on it."""
    server, gw_ns = lan.add_ns(), lan.add_ns()
    lan.attach(server, address="198.18.0.1/24", mac=SERVER_MAC)
    lan.attach(gw_ns, mac=GW_MAC)
    await start_dnsmasq(procs, server, tmp_path / "dnsmasq")
    gw = await start_gateway(procs, gw_ns, tmp_path / "gw",
                             DHCP_PORT + "mdns: {enabled: true}\n")
    address = (await wait_for(bound(gw), 15))["addresses"][0].split("/")[0]

    async def resolved() -> bool:
        return await zc_resolve(server, "cloudlink.local.", "198.18.0.1", timeout=1) == [address]

    await wait_for(resolved, 10, interval=0.2)


async def test_dhcp_to_static_with_the_same_address(lan: Lan, procs: Procs,
                                                     tmp_path: Path) -> None:
    """Making the leased address static keeps it: the DHCP release must not remove it."""
    server, gw_ns = lan.add_ns(), lan.add_ns()
    lan.attach(server, address="198.18.0.1/24", mac=SERVER_MAC)
    lan.attach(gw_ns, mac=GW_MAC)
    await start_dnsmasq(procs, server, tmp_path / "dnsmasq")
    gw = await start_gateway(procs, gw_ns, tmp_path / "gw", DHCP_PORT)
    address = (await wait_for(bound(gw), 15))["addresses"][0]
    gateway_config(gw.dir, f"ports: [{{name: eth0, mode: static, address: {address}, "
                           "gateway: 198.18.0.1}]\n")
    assert (await gw.request("POST", "/v1/reload"))[0] == 200

    async def released() -> bool:
        return "DHCPRELEASE" in (tmp_path / "dnsmasq" / "dnsmasq.log").read_text()

    await wait_for(released, 5)
    await asyncio.sleep(0.5)
    assert kernel_v4(gw_ns) == [address]
    assert port_state(await gw.status())["mode"] == "static"
    assert "restoring" not in gw.log.read_text(), "the address was removed in between"
