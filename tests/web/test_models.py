"""Request validation of the page's forms (the server side of the page's checks)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import ValidationError

from clgwd.web.models import EthernetPort, SiteInfo, TunnelAction


@given(st.integers(0, 2**32 - 1), st.integers(8, 30), st.integers(1, 2**22))
def test_gateway_inside_the_subnet_is_accepted_outside_refused(base: int, prefix: int,
                                                               offset: int) -> None:
    """Any host address with a gateway in its subnet passes; one outside fails."""
    net = ipaddress.IPv4Network((base, prefix), strict=False)
    assume(offset < net.num_addresses - 2)
    addr, gw = net.network_address + 1, net.network_address + 1 + offset
    port = {"name": "eth0", "mode": "static", "address": str(addr), "netmask": str(net.netmask),
            "dns": ["192.0.2.53"]}
    assert EthernetPort.model_validate({**port, "gateway": str(gw)}).gateway == str(gw)
    outside = net.broadcast_address + 1 if int(net.broadcast_address) < 2**32 - 1 else (
        net.network_address - 1)
    with pytest.raises(ValidationError, match="not in subnet"):
        EthernetPort.model_validate({**port, "gateway": str(outside)})


@pytest.mark.parametrize("bad", [
    {"mode": "static", "address": "192.0.2.10"},  # no netmask
    {"mode": "static", "address": "192.0.2.10", "netmask": "255.255.255.0"},  # no DNS
    {"mode": "static", "address": "192.0.2.255", "netmask": "255.255.255.0",
     "dns": ["192.0.2.53"]},  # broadcast
    {"mode": "static", "address": "192.0.2.10", "netmask": "255.255.255.0",
     "dns": ["192.0.2.53"], "extra": 1},  # unknown key
    {"mode": "bridge"},
])
def test_incomplete_or_wrong_static_ports_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        EthernetPort.model_validate({"name": "eth0", **bad})


def test_dhcp_needs_nothing_else_and_site_rejects_control_characters() -> None:
    assert EthernetPort.model_validate({"name": "eth0", "mode": "dhcp"}).address is None
    site = {"site_name": "A", "city": "B", "country": "C", "province": "D",
            "postal_code": "K0A"}
    SiteInfo.model_validate(site)
    with pytest.raises(ValidationError, match="site_name"):
        SiteInfo.model_validate({**site, "site_name": "a\x00b"})


@pytest.mark.parametrize("body", [{"name": "msl-admin"}, {"all": True},
                                  {"name": "mivb.admin_ui", "expiry": 43200}])
def test_tunnel_action_names_one_tunnel_or_all(body: dict[str, object]) -> None:
    """A tunnel start/stop names one configured tunnel or says all, as the tunnel part
    expects; the router gets exactly what was given."""
    assert TunnelAction.model_validate(body).model_dump(exclude_defaults=True) == body


@pytest.mark.parametrize("body", [{}, {"all": False}, {"name": "x", "all": True},
                                  {"name": "-x"}, {"name": "A"}, {"name": "x" * 64},
                                  {"all": True, "expiry": 0}, {"all": True, "expiry": 43201},
                                  {"tunnel": "x", "component": "pbx"}])
def test_tunnel_action_refuses_ambiguous_or_malformed(body: dict[str, object]) -> None:
    """Neither or both of name/all, a name the config could not hold, an expiry out of
    1..43200 s and the pre-merge {component, tunnel} shape are refused."""
    with pytest.raises(ValidationError):
        TunnelAction.model_validate(body)


def test_dhcp_port_as_read_is_valid_input_and_its_lease_is_not_forwarded() -> None:
    """GET /network's DHCP port (with its read-only lease) can be POSTed back unchanged;
    the lease never reaches network.apply as a setting."""
    shown = {"name": "eth1", "mode": "dhcp", "dns": [], "lease": {
        "address": "192.0.2.77", "netmask": "255.255.255.128", "gateway": "192.0.2.1",
        "dns": ["192.0.2.53"], "expires": 1.8e9}}
    port = EthernetPort.model_validate(shown)
    assert port.address is None and port.dns == []
    assert port.model_dump()["lease"] == shown["lease"]
