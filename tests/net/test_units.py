"""Pure functions of clgwd.net: config parsing, protocol codecs, names, banner, resolv.conf.

No root, no namespaces: these run everywhere.
"""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clgwd.config import ConfigError, parse_config
from clgwd.config.network import parse_interface
from clgwd.net.advertiser import _wins_tiebreak, candidate_labels, suitable
from clgwd.net.banner import BannerExtras, banner_hook, render_banner
from clgwd.net.preflight import (
    CheckFailed,
    dns_answer_addresses,
    dns_query,
    render_report,
    sntp_request,
    stun_mapped_address,
    stun_request,
)
from clgwd.net.resolv import render_resolv_conf, write_resolv_conf

# RFC 5769 section 2.2: sample IPv4 binding response (XOR-MAPPED-ADDRESS 192.0.2.1:32853).
RFC5769_TXID = bytes.fromhex("b7e7a701bc34d686fa87dfae")
RFC5769_RESPONSE = bytes.fromhex(
    "0101003c2112a442b7e7a701bc34d686fa87dfae"
    "8022000b7465737420766563746f7220"
    "002000080001a147e112a643"
    "000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7"
    "80280004c07d4c96")


def test_empty_network_section_manages_nothing() -> None:
    """An empty file is valid: no ports, mDNS off, DNS not managed."""
    network = parse_config("").network
    assert network.ports == [] and network.mdns.enabled is False
    assert network.resolv_conf is None and network.confirm.timeout == 90.0


def test_static_port_with_netmask() -> None:
    """address + netmask is the same as address/prefix."""
    port = parse_config("network: {ports: [{name: eth0, mode: static, address: 192.0.2.5, "
                        "netmask: 255.255.255.0, gateway: 192.0.2.1}]}").network.ports[0]
    assert port.interface() == ipaddress.IPv4Interface("192.0.2.5/24")


@pytest.mark.parametrize(("ports", "path", "message"), [
    ("[{name: eth0, mode: static, address: 198.18.0.5/33}]",
     "network.ports[0].address", "/prefix of 1-32"),
    ("[{name: eth0, mode: static, address: 198.18.0.5, netmask: 255.255.255.255.0}]",
     "network.ports[0].netmask", "must be an IPv4 address"),
    ("[{name: eth0, mode: static, address: 198.18.0.5, netmask: 255.0.255.0}]",
     "network.ports[0].address", "contiguous netmask"),
    ("[{name: eth0, mode: static, address: 198.18.0.5/24, gateway: 192.0.2.1}]",
     "network.ports[0].gateway", "inside the port's subnet 198.18.0.0/24"),
    ("[{name: eth0, mode: static, address: 198.18.0.5/24, dns: [ns1.example]}]",
     "network.ports[0].dns[0]", "must be an IPv4 or IPv6 address"),
    ("[{name: eth0, mode: static, address: 198.18.0.5/24},"
     " {name: eth1, mode: static, address: 198.18.0.9/16}]",
     "network.ports", "ports[1].address must not overlap ports[0]"),
    ("[{name: eth0, mode: dhcp, address: 198.18.0.5/24}]",
     "network.ports[0].address", "must not be set when mode is dhcp"),
    ("[{name: eth0, mode: static, address: 198.18.0.0/24}]",
     "network.ports[0].address", "network or broadcast address"),
    ("[{name: eth0}, {name: eth0}]", "network.ports", "must be unique"),
    ("[{name: 'eth0/x'}]", "network.ports[0].name", "Linux interface name"),
])
def test_invalid_port_config_rejected(ports: str, path: str, message: str) -> None:
    """Invalid port settings are config errors naming the key path, one error each."""
    with pytest.raises(ConfigError) as info:
        parse_config(f"network: {{ports: {ports}}}")
    issues = info.value.issues
    assert len(issues) == 1, issues
    assert issues[0].path == path and message in issues[0].message, issues[0]


@given(st.ip_addresses(v=4), st.integers(min_value=1, max_value=30))
def test_parse_interface_matches_ipaddress(address: ipaddress.IPv4Address, prefix: int) -> None:
    """Prefix and netmask notation agree with the standard library."""
    expected = ipaddress.IPv4Interface((address, prefix))
    if address in {expected.network.network_address, expected.network.broadcast_address}:
        with pytest.raises(ValueError, match="network or broadcast"):
            parse_interface(f"{address}/{prefix}", None)
        return
    assert parse_interface(f"{address}/{prefix}", None) == expected
    assert parse_interface(str(address), str(expected.netmask)) == expected


def test_stun_parses_rfc5769_vector() -> None:
    """The XOR-MAPPED-ADDRESS of RFC 5769's sample response decodes to 192.0.2.1:32853."""
    assert stun_mapped_address(RFC5769_RESPONSE, RFC5769_TXID) == "192.0.2.1:32853"
    with pytest.raises(CheckFailed, match="not a binding success"):
        stun_mapped_address(RFC5769_RESPONSE, bytes(12))


def test_stun_request_is_a_binding_request() -> None:
    request = stun_request(RFC5769_TXID)
    assert struct.unpack("!HHI", request[:8]) == (0x0001, 0, 0x2112A442)
    assert request[8:] == RFC5769_TXID and len(request) == 20


def test_dns_answer_parsing() -> None:
    """A response with a compressed name yields its A records; rcode 3 is 'not found'."""
    query = dns_query("cloud.example", 0x1234)
    answer = (struct.pack("!HHHHHH", 0x1234, 0x8180, 1, 1, 0, 0) + query[12:]
              + b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([192, 0, 2, 7]))
    assert dns_answer_addresses(answer, 0x1234) == ["192.0.2.7"]
    nxdomain = struct.pack("!HHHHHH", 0x1234, 0x8183, 1, 0, 0, 0) + query[12:]
    with pytest.raises(CheckFailed, match="name not found"):
        dns_answer_addresses(nxdomain, 0x1234)
    with pytest.raises(CheckFailed, match="not an answer"):
        dns_answer_addresses(answer, 0x4321)


def test_sntp_request_is_client_mode() -> None:
    request = sntp_request()
    assert len(request) == 48 and request[0] & 0x7 == 3 and request[0] >> 3 & 0x7 == 4


def test_report_rendering() -> None:
    text = render_report({"ok": False, "checks": [
        {"name": "cloud", "target": "192.0.2.9:443", "ok": False, "seconds": 0.0012,
         "detail": "connection refused"}]})
    assert text.startswith("FAIL  cloud") and "1.2 ms" in text and "connection refused" in text
    assert "no pre-flight targets" in render_report({"ok": True, "checks": []})


def test_candidate_labels_prefer_persisted_name() -> None:
    assert candidate_labels("cloudlink", None)[:3] == ["cloudlink", "cloudlink-2", "cloudlink-3"]
    assert candidate_labels("cloudlink", "cloudlink-3")[:3] == ["cloudlink-3", "cloudlink",
                                                                 "cloudlink-2"]
    assert candidate_labels("cloudlink", "other")[0] == "cloudlink"


@pytest.mark.parametrize(("address", "expected"), [
    ("192.0.2.5", True), ("127.0.0.1", False), ("fe80::1", True), ("fd00::5", True),
    ("2001:db8::5", False), ("::1", False), ("0.0.0.0", False),
])
def test_suitable_addresses(address: str, expected: bool) -> None:
    """Published: IPv4 and link-local/ULA IPv6; never loopback or global IPv6."""
    assert suitable(ipaddress.ip_address(address)) is expected


def test_tiebreak_greater_address_keeps_the_name() -> None:
    ours = [ipaddress.ip_address("198.18.0.11")]
    assert _wins_tiebreak(ours, {"198.18.0.10"}) is True
    assert _wins_tiebreak(ours, {"198.18.0.12"}) is False
    assert _wins_tiebreak(ours, {"SRV x -> other.local."}) is False


def test_banner_shows_name_addresses_and_placeholders() -> None:
    addresses = [ipaddress.ip_address("192.0.2.5"), ipaddress.ip_address("fe80::1")]
    text = render_banner("cloudlink-2", addresses, 80, 443)
    assert "https://cloudlink-2.local/" in text and "https://192.0.2.5/" in text
    assert "fe80" not in text and text.count("not available yet") == 2
    text = render_banner("cloudlink", addresses, 8080, None,
                         BannerExtras("ask for the code on the sticker", "AB:CD"))
    assert "http://cloudlink.local:8080/" in text and "AB:CD" in text


async def test_resolv_conf_written_atomically_once(tmp_path: Path) -> None:
    """Content is deduplicated, capped at three servers, and rewritten only on change."""
    path = tmp_path / "etc" / "resolv.conf"
    servers = ["192.0.2.53", "192.0.2.53", "192.0.2.54", "192.0.2.55", "192.0.2.56"]
    assert await write_resolv_conf(path, servers) is True
    assert path.read_text() == render_resolv_conf(servers)
    assert path.read_text().count("nameserver") == 3
    assert await write_resolv_conf(path, servers) is False
    assert [p.name for p in path.parent.iterdir()] == ["resolv.conf"]


def test_banner_hook_asks_extras_each_time(caplog: pytest.LogCaptureFixture) -> None:
    """The banner is logged with whatever the extras source knows at that moment."""
    known = {"fingerprint": None}

    def extras() -> BannerExtras:
        return BannerExtras(certificate_fingerprint=known["fingerprint"])

    hook = banner_hook(parse_config("network: {mdns: {enabled: true}}"), extras)
    caplog.set_level("INFO", logger="clgwd.banner")
    hook("cloudlink", [ipaddress.ip_address("192.0.2.5")])
    known["fingerprint"] = "12:34"
    hook("cloudlink", [ipaddress.ip_address("192.0.2.5")])
    first, second = (r.getMessage() for r in caplog.records)
    assert "SHA-256): not available yet" in first and "SHA-256): 12:34" in second
