"""Allowlist unit tests: numeric spellings, special ranges, CIDR and DNS targets.

No test here connects anywhere: the allowlist decides on addresses only.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clgwd.config.tunnel import TunnelTarget
from clgwd.tunnel.allowlist import (
    Allowlist,
    Denied,
    GatewaySelf,
    parse_literal,
    parse_numeric_ipv4,
)


def target(host: str, ports: list[int | str] | None = None, special: bool = False) -> TunnelTarget:
    return TunnelTarget(name="t", host=host, ports=ports or [80, "8000-8010"],
                        allow_special=["loopback"] if special else [])


@pytest.mark.parametrize(("text", "expected"), [
    ("0x7f.1", "127.0.0.1"), ("2130706433", "127.0.0.1"), ("017700000001", "127.0.0.1"),
    ("127.1", "127.0.0.1"), ("0x7f000001", "127.0.0.1"), ("0177.0.0.01", "127.0.0.1"),
    ("169.254.43518", "169.254.169.254"), ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
    ("0", "0.0.0.0"), ("192.0.2.1", "192.0.2.1"),
])
def test_numeric_ipv4_spellings_normalised(text: str, expected: str) -> None:
    """Every spelling a C resolver accepts maps to the address it really means."""
    assert parse_numeric_ipv4(text) == ipaddress.IPv4Address(expected)


@pytest.mark.parametrize("text", ["1.2.3.4.5", "256.1.1.1", "08.1.1.1", "1..2", "a.b",
                                  "1.2.3.4 ", "0x1g", "4294967296", ""])
def test_not_numeric_ipv4(text: str) -> None:
    assert parse_numeric_ipv4(text) is None


@given(st.lists(st.integers(0, 255), min_size=4, max_size=4),
       st.lists(st.sampled_from(["dec", "hex", "oct"]), min_size=4, max_size=4))
def test_numeric_parser_agrees_with_inet_aton(octets: list[int], styles: list[str]) -> None:
    """Our parser and the C library agree on every dotted-quad spelling."""
    parts = [{"dec": str(o), "hex": hex(o), "oct": "0" + oct(o)[2:]}[s]
             for o, s in zip(octets, styles, strict=True)]
    text = ".".join(parts)
    assert parse_numeric_ipv4(text) == ipaddress.IPv4Address(socket.inet_aton(text))


DENIED_FORMS = [
    ("127.0.0.1", "loopback"), ("0x7f.1", "loopback"), ("2130706433", "loopback"),
    ("017700000001", "loopback"), ("127.1", "loopback"), ("::1", "loopback"),
    ("0.0.0.0", "this-network"), ("0.1.2.3", "this-network"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
    ("255.255.255.255", "broadcast"), ("::ffff:127.0.0.1", "ipv4-mapped"),
    ("::ffff:198.51.100.7", "ipv4-mapped"), ("[::1]", "loopback"),
]


@pytest.mark.parametrize(("host", "reason"), DENIED_FORMS)
async def test_special_addresses_denied_even_in_wide_cidr(host: str, reason: str) -> None:
    """A catch-all target still refuses loopback, link-local, mapped forms and friends."""
    allow = Allowlist()
    wide = target("::/0" if ":" in host else "0.0.0.0/0")
    with pytest.raises(Denied) as err:
        await allow.check(wide, host, 80)
    assert err.value.reason == reason


async def test_explicitly_allowed_special_address() -> None:
    """A target may opt in to loopback explicitly (the tests' LAN targets do)."""
    allow = Allowlist()
    assert await allow.check(target("127.0.0.1", special=True), "127.0.0.1", 80) == [
        ipaddress.IPv4Address("127.0.0.1")]


async def test_management_port_denied_even_when_special_allowed() -> None:
    allow = Allowlist(gateway=GatewaySelf(management_ports=frozenset({80})))
    with pytest.raises(Denied) as err:
        await allow.check(target("127.0.0.1", special=True), "127.0.0.1", 80)
    assert err.value.reason == "management-port"


async def test_gateway_own_address_denied() -> None:
    own = ipaddress.IPv4Address("198.51.100.9")
    allow = Allowlist(gateway=GatewaySelf(addresses=frozenset({own})))
    with pytest.raises(Denied) as err:
        await allow.check(target("198.51.100.0/24"), "198.51.100.9", 80)
    assert err.value.reason == "gateway-address"


async def test_cidr_and_ports() -> None:
    allow = Allowlist()
    net = target("198.51.100.0/24")
    assert await allow.check(net, "198.51.100.7", 8005) == [
        ipaddress.IPv4Address("198.51.100.7")]
    for host, port, reason in [("198.51.101.7", 80, "host-not-allowed"),
                               ("198.51.100.7", 22, "port-not-allowed"),
                               ("2001:db8::1", 80, "host-not-allowed"),
                               ("ui.lan.test", 80, "host-not-allowed"),
                               ("fe80::1%eth0", 80, "scoped-address")]:
        with pytest.raises(Denied) as err:
            await allow.check(net, host, port)
        assert err.value.reason == reason


async def test_dns_target_checks_every_answer() -> None:
    """One bad address among the answers refuses the whole name."""
    async def resolver(name: str, port: int) -> list[str]:
        assert name == "ui.lan.test"
        return ["198.51.100.7", "127.0.0.1"]

    allow = Allowlist(resolver)
    with pytest.raises(Denied) as err:
        await allow.check(target("ui.lan.test"), "UI.lan.test.", 80)
    assert err.value.reason == "loopback"


async def test_dns_target_name_must_match_and_resolve() -> None:
    calls: list[str] = []

    async def resolver(name: str, port: int) -> list[str]:
        calls.append(name)
        raise socket.gaierror(-2, "Name or service not known")

    allow = Allowlist(resolver)
    with pytest.raises(Denied) as err:
        await allow.check(target("ui.lan.test"), "other.lan.test", 80)
    assert err.value.reason == "host-not-allowed" and calls == []
    with pytest.raises(Denied) as err:
        await allow.check(target("ui.lan.test"), "ui.lan.test", 80)
    assert err.value.reason == "resolve-failed"
    with pytest.raises(Denied):
        await allow.check(target("ui.lan.test"), "198.51.100.7", 80)


def test_literal_forms() -> None:
    assert parse_literal("[2001:db8::1]") == ipaddress.IPv6Address("2001:db8::1")
    assert parse_literal("ui.lan.test") is None


def test_unreadable_proc_files_are_reported(monkeypatch: pytest.MonkeyPatch,
                                            caplog: pytest.LogCaptureFixture) -> None:
    """Own-address discovery that cannot read /proc says so instead of staying silent."""
    import builtins

    from clgwd.tunnel import allowlist

    def refuse(*_args: object, **_kwargs: object) -> object:
        raise PermissionError("denied")

    monkeypatch.setattr(builtins, "open", refuse)
    with caplog.at_level("WARNING", logger="clgwd.tunnel.allowlist"):
        assert allowlist.read_own_addresses() == frozenset()
    assert "/proc/net/fib_trie" in caplog.text and "/proc/net/if_inet6" in caplog.text
