"""What the kernel and the DHCP client tell the ``network`` component, as plain data.

The pyroute2 wrapper (``clgwd.net.netlink``) turns pyroute2's messages into these; the
rest of the part uses them without loading pyroute2, which the component imports only
when it has ports to manage (or the mDNS advertiser asks for addresses).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class _NetlinkError(Protocol):
    code: int


class NetlinkFailure(Exception):
    """A netlink request failed; ``errno`` says why (EEXIST, EADDRNOTAVAIL, ...)."""

    def __init__(self, action: str, err: _NetlinkError) -> None:
        super().__init__(f"{action}: {err}")
        self.errno: int = int(err.code)


@dataclass(frozen=True)
class LinkInfo:
    """What status pages need to know about one interface."""

    index: int
    name: str
    admin_up: bool
    carrier: bool
    operstate: str
    mac: str | None
    loopback: bool


@dataclass(frozen=True)
class AddressInfo:
    """One address on one interface."""

    index: int
    interface: ipaddress.IPv4Interface | ipaddress.IPv6Interface
    scope: int

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        return self.interface.ip


@dataclass(frozen=True)
class NetlinkEvent:
    """A change the kernel told us about: ``link``, ``addr`` or ``route``, on ``index``."""

    kind: str
    index: int
    removed: bool


class DhcpTrigger(StrEnum):
    """Lease events our DHCP policy reacts to (pyroute2's hook triggers, renamed)."""

    BOUND = "bound"
    RENEWED = "renewed"
    REBOUND = "rebound"
    UNBOUND = "unbound"
    EXPIRED = "expired"


@dataclass(frozen=True)
class DhcpLease:
    """The parts of a DHCP lease the gateway uses, independent of pyroute2's classes."""

    interface: str
    address: ipaddress.IPv4Interface
    gateway: str | None
    dns: tuple[str, ...]
    server_id: str | None
    obtained: float
    lease_time: int | None
