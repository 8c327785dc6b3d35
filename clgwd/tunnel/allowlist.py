"""Which LAN address a stream may reach: deny by default, decided after DNS.

The check returns the *addresses* it approved, and the caller connects to one of those
literal addresses: there is no second lookup, so a name that resolves to an allowed
address for the check and to 127.0.0.1 a moment later (DNS rebinding) cannot redirect
the connection. Every resolved address must pass, not just the first.

Numeric IPv4 spellings that C resolvers accept (``0x7f.1``, ``2130706433``,
``017700000001``, ``127.1``) are parsed here with the same BSD rules, so they are
checked as the address they really mean instead of being treated as names.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Final

from clgwd.config.tunnel import TunnelTarget

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""``resolve(name, port)`` -> address strings; the default uses ``loop.getaddrinfo``."""

_NUMERIC_PART: Final = re.compile(r"0[xX][0-9a-fA-F]*|[0-9]+")

_ALWAYS_DENIED_V4: Final = (
    (ipaddress.IPv4Network("0.0.0.0/8"), "this-network"),
    (ipaddress.IPv4Network("127.0.0.0/8"), "loopback"),
    (ipaddress.IPv4Network("169.254.0.0/16"), "link-local"),
    (ipaddress.IPv4Network("224.0.0.0/4"), "multicast"),
    (ipaddress.IPv4Network("255.255.255.255/32"), "broadcast"),
    (ipaddress.IPv4Network("240.0.0.0/4"), "reserved"),
)
_ALWAYS_DENIED_V6: Final = (
    (ipaddress.IPv6Network("::/128"), "unspecified"),
    (ipaddress.IPv6Network("::1/128"), "loopback"),
    (ipaddress.IPv6Network("fe80::/10"), "link-local"),
    (ipaddress.IPv6Network("ff00::/8"), "multicast"),
    (ipaddress.IPv6Network("::ffff:0:0/96"), "ipv4-mapped"),
    (ipaddress.IPv6Network("::/96"), "ipv4-compatible"),
    (ipaddress.IPv6Network("64:ff9b::/96"), "nat64"),
    (ipaddress.IPv6Network("2002::/16"), "6to4"),
)

_LOGGER = logging.getLogger(__name__)


class Denied(Exception):
    """The target is not allowed; ``reason`` is a stable token for audit and OPEN_ERR."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def parse_numeric_ipv4(text: str) -> ipaddress.IPv4Address | None:
    """Parse inet_aton spellings (1-4 parts, decimal/octal/hex); None if not numeric."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(_NUMERIC_PART.fullmatch(p) for p in parts):
        return None
    try:
        values = [_parse_part(p) for p in parts]
    except ValueError:
        return None
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (5 - len(values)):
        return None
    number = 0
    for value in head:
        number = number * 256 + value
    number = (number << (8 * (5 - len(values)))) | last
    return ipaddress.IPv4Address(number)


def _parse_part(part: str) -> int:
    if part[:2] in ("0x", "0X"):
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part[0] == "0":
        return int(part, 8)
    return int(part, 10)


def parse_literal(host: str) -> IPAddress | None:
    """An IP literal in any spelling we accept, or None if ``host`` is a name."""
    text = host.strip("[]") if host.startswith("[") else host
    if "%" in text:
        raise Denied("scoped-address", f"{host!r} carries an interface scope")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    return parse_numeric_ipv4(text)


async def default_resolver(name: str, port: int) -> list[str]:
    """Resolve with the loop's executor-backed getaddrinfo (never blocks the loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        name, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class GatewaySelf:
    """What the gateway itself is: never a tunnel target unless explicitly allowed."""

    addresses: frozenset[IPAddress] = frozenset()
    management_ports: frozenset[int] = frozenset()


class Allowlist:
    """Checks one (target, host, port) request and returns the approved addresses."""

    def __init__(self, resolver: Resolver = default_resolver,
                 gateway: GatewaySelf = GatewaySelf()) -> None:
        self._resolve = resolver
        self.gateway = gateway

    async def check(self, target: TunnelTarget, host: str, port: int) -> list[IPAddress]:
        """Approved addresses for ``host:port`` under ``target``, or raise ``Denied``."""
        if not target.port_allowed(port):
            raise Denied("port-not-allowed", f"port {port} is not listed for {target.name}")
        addresses = await self._addresses(target, host, port)
        for address in addresses:
            self._check_address(target, address, port)
            self.check_management_port(target, address, port)
        return addresses

    async def _addresses(self, target: TunnelTarget, host: str, port: int) -> list[IPAddress]:
        literal = parse_literal(host)
        network = _target_network(target)
        if literal is not None:
            if network is None:
                raise Denied("host-not-allowed",
                             f"{host} is an address but {target.name} is a DNS name")
            return [literal]
        if network is not None or host.lower().rstrip(".") != target.host:
            raise Denied("host-not-allowed", f"{host!r} is not {target.name}'s host")
        try:
            answers = await self._resolve(target.host, port)
        except OSError as err:
            raise Denied("resolve-failed", f"{target.host}: {err}") from None
        if not answers:
            raise Denied("resolve-failed", f"{target.host} has no addresses")
        resolved: list[IPAddress] = []
        for answer in answers:
            address = parse_literal(answer)
            if address is None:
                raise Denied("resolve-failed", f"resolver returned {answer!r}")
            resolved.append(address)
        return resolved

    def _check_address(self, target: TunnelTarget, address: IPAddress, port: int) -> None:
        network = _target_network(target)
        if network is not None and (address.version != network.version
                                    or address not in network):
            raise Denied("host-not-allowed", f"{address} is outside {target.host}")
        special = special_reason(address)
        if special is not None and special not in target.allow_special:
            raise Denied(special, f"{address} is a {special} address")
        if special is None and address in self.gateway.addresses and \
                "gateway-address" not in target.allow_special:
            raise Denied("gateway-address", f"{address} is the gateway itself")

    def check_management_port(self, target: TunnelTarget, address: IPAddress,
                              port: int) -> None:
        """The gateway's own admin ports stay closed even where loopback is allowed."""
        own = address in self.gateway.addresses or address.is_loopback or address.is_unspecified
        if own and port in self.gateway.management_ports and \
                "management-port" not in target.allow_special:
            raise Denied("management-port", f"{address}:{port} is the gateway's own service")


def special_reason(address: IPAddress) -> str | None:
    """The always-denied class ``address`` falls in, or None for an ordinary address."""
    table: Iterable[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]]
    table = _ALWAYS_DENIED_V4 if address.version == 4 else _ALWAYS_DENIED_V6
    for network, reason in table:
        if address in network:
            return reason
    return None


def _target_network(target: TunnelTarget) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(target.host)
    except ValueError:
        return None


def read_own_addresses() -> frozenset[IPAddress]:
    """The host's local addresses from /proc (blocking: call via ``to_thread``)."""
    found: set[IPAddress] = set()
    try:
        with open("/proc/net/fib_trie", encoding="ascii") as trie:
            last: str | None = None
            for line in trie:
                stripped = line.strip()
                if stripped.startswith(("|--", "+--")):
                    last = stripped[3:].strip().split("/")[0]
                elif "/32 host LOCAL" in stripped and last is not None:
                    found.add(ipaddress.IPv4Address(last))
    except (OSError, ValueError) as err:
        _warn_unreadable("/proc/net/fib_trie", err)
    try:
        with open("/proc/net/if_inet6", encoding="ascii") as inet6:
            for line in inet6:
                raw = line.split()[0]
                found.add(ipaddress.IPv6Address(":".join(raw[i:i + 4] for i in range(0, 32, 4))))
    except (OSError, ValueError, IndexError) as err:
        _warn_unreadable("/proc/net/if_inet6", err)
    return frozenset(found)


def _warn_unreadable(path: str, err: Exception) -> None:
    """Say so when own-address discovery fails: "gateway-address" targets are then not
    recognised (loopback and the other special classes are still refused)."""
    _LOGGER.warning("Cannot read %s for the gateway's own addresses: %s (%s)",
                    path, err, type(err).__name__)
