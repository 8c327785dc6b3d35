"""``network.get/apply/confirm`` on the router: the page's shape, validation, tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from blockbuster import BlockBuster

from clgwd.commands import CommandContext, CommandRouter
from clgwd.config.network import PortConfig
from clgwd.net.commands import NetworkCommands, ethernet_to_port, merge_ports, port_to_ethernet
from clgwd.net.component import NetworkComponent
from clgwd.net.reconcile import PortState
from clgwd.net.trial import InvalidPortConfig, NothingToConfirm, WrongConfirmToken
from clgwd.store import Store
from tests.net.conftest import Lan, kernel_v4, wait_for
from tests.net.test_ports import STATIC_A, config_for, running

WEB = CommandContext(actor="local:web:admin")
CLI = CommandContext(actor="local:cli")
ETH0 = PortConfig(name="eth0", mode="static", address="198.18.0.30/24", gateway="198.18.0.1",
                  dns=["198.18.0.53"])
GOOD = {"name": "eth0", "mode": "static", "address": "198.18.0.31", "netmask": "255.255.255.0",
        "gateway": "198.18.0.254", "dns": ["198.18.0.54"]}


def test_static_port_in_the_page_shape() -> None:
    """A /prefix address becomes address + dotted-quad netmask, and back again."""
    page = port_to_ethernet(ETH0)
    assert page == {"name": "eth0", "mode": "static", "address": "198.18.0.30",
                    "netmask": "255.255.255.0", "gateway": "198.18.0.1",
                    "dns": ["198.18.0.53"]}
    assert ethernet_to_port(page, "ports[0]") == ETH0
    odd = ethernet_to_port({**page, "netmask": "255.255.240.0", "address": "198.18.1.2"}, "p")
    assert odd.address == "198.18.1.2/20" and odd.netmask is None


def test_dhcp_port_reports_its_lease_apart() -> None:
    """A DHCP port's lease (kernel address, lease gateway and DNS) is a separate,
    read-only ``lease`` object; ``dns`` stays the configured override list."""
    port = PortConfig(name="eth1", mode="dhcp")
    state = PortState(name="eth1", mode="dhcp", present=True, addresses=("192.0.2.77/25",),
                      gateway="192.0.2.1", dns=("192.0.2.53",), lease_expires=1.8e9)
    assert port_to_ethernet(port, state) == {
        "name": "eth1", "mode": "dhcp", "dns": [], "lease": {
            "address": "192.0.2.77", "netmask": "255.255.255.128", "gateway": "192.0.2.1",
            "dns": ["192.0.2.53"], "expires": 1.8e9}}
    assert port_to_ethernet(port, None) == {"name": "eth1", "mode": "dhcp", "dns": [],
                                            "lease": None}
    assert ethernet_to_port({"name": "eth1", "mode": "dhcp"}, "p") == port


def test_network_get_round_trips_through_network_apply() -> None:
    """What network.get shows (incl. a DHCP lease) is valid input to network.apply and
    changes nothing: the lease is ignored, not pinned as static DNS."""
    eth1 = PortConfig(name="eth1", mode="dhcp", dns=["192.0.2.99"])
    state = PortState(name="eth1", mode="dhcp", present=True, addresses=("192.0.2.77/25",),
                      gateway="192.0.2.1", dns=("192.0.2.53",), lease_expires=1.8e9)
    shown = [port_to_ethernet(ETH0), port_to_ethernet(eth1, state)]
    assert merge_ports([ETH0, eth1], {"ports": shown}) == [ETH0, eth1]
    with pytest.raises(InvalidPortConfig, match=r"ports\[0\]\.lease: must be an object"):
        merge_ports([ETH0, eth1], {"ports": [{**shown[1], "lease": "x"}]})


@pytest.mark.parametrize(("port", "field"), [
    ({**GOOD, "netmask": "255.0.255.0"}, "ports[0].address"),  # not contiguous
    ({**GOOD, "netmask": "255.255.255.300"}, "ports[0].netmask"),
    ({**GOOD, "address": "198.18.0.300"}, "ports[0].address"),
    ({**GOOD, "address": "198.18.0.0"}, "ports[0].address"),  # network address
    ({**GOOD, "gateway": "192.0.2.1"}, "ports[0].gateway"),  # outside the subnet
    ({**GOOD, "dns": ["not-an-ip"]}, "ports[0].dns"),
    ({**GOOD, "dns": ["198.18.0.1"] * 4}, "ports[0].dns"),
    ({k: v for k, v in GOOD.items() if k != "netmask"}, "ports[0].netmask"),
    ({**GOOD, "carrier": True}, "carrier"),
    ({"name": "eth0", "mode": "dhcp", "address": "198.18.0.5"}, "ports[0].address"),
    ({"name": "eth/0", "mode": "dhcp"}, "ports[0].name"),
])
def test_invalid_ports_name_the_field(port: dict[str, Any], field: str) -> None:
    """The cloud and the CLI get the same checks as the page, with the field named."""
    with pytest.raises(InvalidPortConfig, match=field.replace("[", r"\[").replace("]", r"\]")):
        merge_ports([ETH0], {"ports": [port]})


def test_only_managed_ports_can_change() -> None:
    """No front door can take over an interface the config does not manage."""
    with pytest.raises(InvalidPortConfig, match="does not manage its network ports"):
        merge_ports([], {"ports": [GOOD]})
    with pytest.raises(InvalidPortConfig, match="'eth1' is not a port this gateway manages"):
        merge_ports([ETH0], {"ports": [{"name": "eth1", "mode": "dhcp"}]})
    with pytest.raises(InvalidPortConfig, match="given twice"):
        merge_ports([ETH0], {"ports": [GOOD, GOOD]})
    bad: dict[str, Any]
    for bad in ({}, {"ports": []}, {"ports": "eth0"}):
        with pytest.raises(InvalidPortConfig, match="ports: must be a list"):
            merge_ports([ETH0], bad)
    eth1 = PortConfig(name="eth1", mode="dhcp")
    merged = merge_ports([ETH0, eth1], {"ports": [{"name": "eth1", "mode": "dhcp",
                                                   "dns": ["192.0.2.53"]}]})
    assert merged == [ETH0, PortConfig(name="eth1", mode="dhcp", dns=["192.0.2.53"])]


async def test_no_managed_ports_apply_is_refused_before_any_change(
        make_config: Any) -> None:
    """With no ports in the config (a developer's machine), apply changes nothing."""
    config = make_config()
    router = CommandRouter()
    async with Store(config) as store, NetworkComponent(config, store, router) as net:
        assert await router.call("network.get", {}, WEB) == {
            "ports": [], "awaiting_confirmation": None}
        with pytest.raises(InvalidPortConfig, match="does not manage") as info:
            await router.call("network.apply", {"ports": [GOOD]}, WEB)
        assert info.value.http_status == 422 and net.trial is None
        with pytest.raises(NothingToConfirm, match="unknown or expired") as err:
            await router.call("network.confirm", {"token": "nope"}, WEB)
        assert err.value.http_status == 409


@pytest.fixture
def allow_netns_socket_handover(blockbuster: BlockBuster) -> None:
    for name in blockbuster.functions:
        blockbuster.functions[name].can_block_in("pyroute2/process.py",
                                                 {"communicate", "start", "stop"})


@pytest.mark.netns
@pytest.mark.usefixtures("allow_netns_socket_handover")
async def test_apply_then_confirm_with_the_token(lan: Lan, tmp_path: Path) -> None:
    """apply reaches the kernel and answers the token; only that token confirms it."""
    ns = lan.add_ns()
    lan.attach(ns)
    router = CommandRouter()
    async with running(config_for(tmp_path, STATIC_A), ns) as (_, net):
        NetworkCommands(net).register(router)
        got = await router.call("network.get", {}, WEB)
        assert got["ports"] == [port_to_ethernet(ETH0)]
        answer = await router.call("network.apply", {"ports": [GOOD]}, WEB)
        assert answer["new_addresses"] == ["198.18.0.31"]
        assert 85 <= answer["rollback_after_s"] <= 90
        assert kernel_v4(ns) == ["198.18.0.31/24"]
        token = answer["confirm_token"]
        assert isinstance(token, str) and len(token) >= 20 and net.trial is not None
        assert net.trial.actor == "local:web:admin"
        got = await router.call("network.get", {}, WEB)
        assert got["ports"][0]["address"] == "198.18.0.31"
        assert got["awaiting_confirmation"]["actor"] == "local:web:admin"
        with pytest.raises(WrongConfirmToken, match="does not belong") as info:
            await router.call("network.confirm", {"token": token + "x"}, WEB)
        assert info.value.http_status == 409
        assert await router.call("network.confirm", {"token": token}, WEB) == {
            "confirmed": True}
        with pytest.raises(WrongConfirmToken, match="already confirmed"):
            await router.call("network.confirm", {"token": token}, WEB)
        # The CLI and the cloud confirm without a token; a replaced trial's link is stale.
        first = await router.call("network.apply", {"ports": [port_to_ethernet(ETH0)]}, WEB)
        second = await router.call("network.apply", {"ports": [GOOD]}, CLI)
        with pytest.raises(WrongConfirmToken, match="replaced by a newer change"):
            await router.call("network.confirm", {"token": first["confirm_token"]}, WEB)
        assert await router.call("network.confirm", {}, CLI) == {"confirmed": True}
        assert second["confirm_token"] != first["confirm_token"]
        assert kernel_v4(ns) == ["198.18.0.31/24"]


@pytest.mark.netns
@pytest.mark.usefixtures("allow_netns_socket_handover")
async def test_token_of_a_rolled_back_change_says_so(lan: Lan, tmp_path: Path) -> None:
    """A confirm link opened after the deadline explains that the change was undone."""
    ns = lan.add_ns()
    lan.attach(ns)
    async with running(config_for(tmp_path, STATIC_A), ns) as (_, net):
        trial = await net.propose([ethernet_to_port(GOOD, "p")], actor="local:web:admin",
                                  confirm_within=0.3)

        async def rolled_back() -> bool:
            return net.trial is None

        await wait_for(rolled_back, 3)
        with pytest.raises(WrongConfirmToken, match="rolled back"):
            await net.confirm("local:web:admin", trial.token)
        assert kernel_v4(ns) == ["198.18.0.30/24"]
