"""The one module that imports pyroute2: links, addresses, routes, events and DHCP.

Why a wrapper: pyroute2's API churns between minor versions (0.9 rewrote the core on
asyncio; dumps return async generators while ``get`` returns lists; the DHCP hooks API
"might still change"). Everything else in clgwd talks to the small typed surface here.

Rules this module keeps:

* Only the async API (``AsyncIPRoute``): the sync ``IPRoute`` runs its own loop and
  fails inside ours.
* ``netns=`` is passed through so tests (and a future multi-namespace appliance) can
  manage interfaces inside a network namespace from the process's own namespace.
* The DHCP client (pyroute2's ``AsyncDHCPClient``) runs with our hooks only, no signal
  handlers, no pid file and a lease class that hands the lease to our callback instead
  of writing ``<ifname>.lease.json`` into the working directory with blocking I/O.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any, Self

from pyroute2 import AsyncIPRoute
from pyroute2.dhcp.client import AsyncDHCPClient, ClientConfig
from pyroute2.dhcp.fsm import State
from pyroute2.dhcp.hooks import Hook, Trigger
from pyroute2.dhcp.leases import Lease, MissingOptionError
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import (
    RTMGRP_IPV4_IFADDR,
    RTMGRP_IPV4_ROUTE,
    RTMGRP_IPV6_IFADDR,
    RTMGRP_LINK,
)

from clgwd.net.linkinfo import (
    AddressInfo,
    DhcpLease,
    DhcpTrigger,
    LinkInfo,
    NetlinkEvent,
    NetlinkFailure,
)

_LOGGER = logging.getLogger(__name__)
# pyroute2 logs every netlink message at DEBUG (kilobytes per event); our own DEBUG
# lines say what happened, so keep the library at INFO even when the daemon is at DEBUG.
logging.getLogger("pyroute2").setLevel(logging.INFO)

_IFF_UP = 0x1
_IFF_LOWER_UP = 0x10000
_RT_SCOPE_UNIVERSE = 0
_MAIN_TABLE = 254
STATIC_ROUTE_METRIC = 100
"""Metric of routes we add, so a second port's default route does not clash."""


def _link_info(msg: Any) -> LinkInfo:
    flags = int(msg["flags"])
    return LinkInfo(
        index=int(msg["index"]), name=str(msg.get("IFLA_IFNAME")),
        admin_up=bool(flags & _IFF_UP), carrier=bool(flags & _IFF_LOWER_UP),
        operstate=str(msg.get("IFLA_OPERSTATE") or "UNKNOWN"),
        mac=msg.get("IFLA_ADDRESS"), loopback=str(msg.get("IFLA_IFNAME")) == "lo",
    )


def _address_info(msg: Any) -> AddressInfo | None:
    text = msg.get("IFA_ADDRESS")
    if msg["family"] == socket.AF_INET:
        text = msg.get("IFA_LOCAL") or text
    if text is None:
        return None
    iface = ipaddress.ip_interface(f"{text}/{msg['prefixlen']}")
    return AddressInfo(index=int(msg["index"]), interface=iface, scope=int(msg["scope"]))


class Netlink:
    """An rtnetlink connection (optionally inside the network namespace ``netns``).

    With ``netns`` pyroute2 forks a helper into the namespace that hands the socket
    back; that hand-over blocks the loop for a few milliseconds, so it is for tests and
    tools only. The daemon itself runs inside its namespace with ``netns=None``.
    """

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self._ipr: Any = None
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> Self:
        kwargs: dict[str, Any] = {"ext_ack": True, "strict_check": True}
        if self.netns is not None:
            kwargs["netns"] = self.netns
        self._ipr = AsyncIPRoute(**kwargs)
        await self._ipr.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._ipr is not None:
            ipr, self._ipr = self._ipr, None
            await ipr.__aexit__(None, None, None)

    @property
    def _api(self) -> Any:
        if self._ipr is None:
            raise RuntimeError("netlink connection is not open")
        return self._ipr

    async def links(self) -> list[LinkInfo]:
        return [_link_info(m) for m in await self._dump("links", self._api.link, "dump")]

    async def link(self, name: str) -> LinkInfo | None:
        for info in await self.links():
            if info.name == name:
                return info
        return None

    async def set_up(self, index: int) -> None:
        await self._call(f"set link {index} up", self._api.link, "set", index=index,
                         state="up")

    async def addresses(self, index: int | None = None) -> list[AddressInfo]:
        kwargs: dict[str, Any] = {} if index is None else {"index": index}
        out = []
        for msg in await self._dump("addresses", self._api.addr, "dump", **kwargs):
            info = _address_info(msg)
            if info is not None and (index is None or info.index == index):
                out.append(info)
        return out

    async def add_address(self, index: int, iface: ipaddress.IPv4Interface) -> None:
        await self._call(f"add {iface} on {index}", self._api.addr, "replace", index=index,
                         address=str(iface.ip), prefixlen=iface.network.prefixlen,
                         broadcast=str(iface.network.broadcast_address))

    async def remove_address(self, index: int,
                             iface: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> None:
        try:
            await self._call(f"remove {iface} from {index}", self._api.addr, "del",
                             index=index, address=str(iface.ip),
                             prefixlen=iface.network.prefixlen)
        except NetlinkFailure as err:
            if err.errno != errno.EADDRNOTAVAIL:
                raise

    async def default_gateways(self, index: int) -> list[str]:
        """IPv4 default routes in the main table through interface ``index``."""
        routes = await self._dump("routes", self._api.route, "dump", family=socket.AF_INET,
                                  table=_MAIN_TABLE)
        return [str(msg.get("RTA_GATEWAY")) for msg in routes
                if msg["dst_len"] == 0 and msg.get("RTA_OIF") == index
                and msg.get("RTA_GATEWAY")]

    async def replace_default_gateway(self, index: int, gateway: str) -> None:
        await self._call(f"default via {gateway} on {index}", self._api.route, "replace",
                         dst="0.0.0.0/0", gateway=gateway, oif=index,
                         priority=STATIC_ROUTE_METRIC)

    async def remove_default_gateway(self, index: int, gateway: str) -> None:
        try:
            await self._call(f"remove default via {gateway}", self._api.route, "del",
                             dst="0.0.0.0/0", gateway=gateway, oif=index,
                             priority=STATIC_ROUTE_METRIC)
        except NetlinkFailure as err:
            if err.errno != errno.ESRCH:
                raise

    async def _dump(self, what: str, method: Callable[..., Awaitable[Any]], *args: Any,
                    **kwargs: Any) -> list[Any]:
        """One dump at a time per socket: a second concurrent dump fails with EBUSY."""
        async with self._lock:
            try:
                return [msg async for msg in await method(*args, **kwargs)]
            except NetlinkError as err:
                raise NetlinkFailure(f"dump {what}", err) from err

    async def _call(self, action: str, method: Callable[..., Awaitable[Any]], *args: Any,
                    **kwargs: Any) -> None:
        async with self._lock:
            try:
                await method(*args, **kwargs)
            except NetlinkError as err:
                raise NetlinkFailure(action, err) from err


class NetlinkMonitor:
    """Subscribes to link, address and route changes; enter it *before* reading state.

    Subscribing first means a change that happens between the subscription and the
    initial dump is seen as an event rather than lost.
    """

    def __init__(self, netns: str | None = None) -> None:
        self._netlink = Netlink(netns)

    async def __aenter__(self) -> Self:
        await self._netlink.__aenter__()
        groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_ROUTE
        await self._netlink._api.bind(groups=groups)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._netlink.__aexit__(*exc_info)

    async def events(self) -> AsyncIterator[NetlinkEvent]:
        """Yield events forever; each ``get()`` returns the messages of one datagram.

        If the kernel dropped events because we read too slowly (ENOBUFS), a ``resync``
        event tells the consumer to re-read everything instead of trusting its view.
        """
        api = self._netlink._api
        kinds = {"RTM_NEWLINK": ("link", False), "RTM_DELLINK": ("link", True),
                 "RTM_NEWADDR": ("addr", False), "RTM_DELADDR": ("addr", True),
                 "RTM_NEWROUTE": ("route", False), "RTM_DELROUTE": ("route", True)}
        while True:
            try:
                messages = [msg async for msg in api.get()]
            except (OSError, NetlinkError) as err:
                code = err.errno if isinstance(err, OSError) else err.code
                if code != errno.ENOBUFS:
                    raise
                _LOGGER.warning("Netlink events were dropped (ENOBUFS); re-reading the state")
                yield NetlinkEvent("resync", 0, removed=False)
                continue
            for msg in messages:
                kind = kinds.get(str(msg.get("event")))
                if kind is None:
                    continue
                index = msg.get("index") if kind[0] != "route" else msg.get("RTA_OIF")
                yield NetlinkEvent(kind[0], int(index or 0), kind[1])


# -- DHCP -------------------------------------------------------------------------------


def _option(lease: Lease, name: str) -> Any:
    try:
        return getattr(lease, name)
    except MissingOptionError:
        return None


def _to_lease(lease: Lease) -> DhcpLease:
    mask = _option(lease, "subnet_mask") or "255.255.255.255"
    routers = _option(lease, "routers") or []
    return DhcpLease(
        interface=lease.interface,
        address=ipaddress.IPv4Interface(f"{lease.ip}/{mask}"),
        gateway=routers[0] if routers else None,
        dns=tuple(str(s) for s in (_option(lease, "name_servers") or [])),
        server_id=_option(lease, "server_id"),
        obtained=float(lease.obtained),
        lease_time=_option(lease, "lease_time"),
    )


LeaseHandler = Callable[[DhcpTrigger, DhcpLease], Awaitable[None]]
LeaseSaver = Callable[[str, Mapping[str, Any] | None], None]
"""Called (on the loop, must not block) with the interface and the lease as JSON data."""


def _lease_class(saved: Mapping[str, Any] | None, save: LeaseSaver) -> type[Lease]:
    """A Lease subclass bound to our storage: ``load`` reads what the caller preloaded.

    pyroute2 calls ``dump``/``load`` synchronously on the event loop, so neither may do
    file I/O; the caller loads the JSON beforehand and writes it in a thread afterwards.
    """

    class _StoredLease(Lease):  # type: ignore[misc]
        def dump(self) -> None:
            save(self.interface, json.loads(json.dumps(asdict(self), default=str)))

        @classmethod
        def load(cls, interface: str) -> Lease | None:
            if not saved or saved.get("interface") != interface:
                return None
            try:
                return cls(**dict(saved))
            except (TypeError, ValueError, KeyError) as err:
                _LOGGER.warning("Ignoring unreadable stored lease for %s (%s)", interface, err)
                return None

    return _StoredLease


def _hooks(handler: LeaseHandler) -> tuple[Hook, ...]:
    """One pyroute2 hook per trigger, each forwarding to our handler."""
    mapping = {Trigger.BOUND: DhcpTrigger.BOUND, Trigger.RENEWED: DhcpTrigger.RENEWED,
               Trigger.REBOUND: DhcpTrigger.REBOUND, Trigger.UNBOUND: DhcpTrigger.UNBOUND,
               Trigger.EXPIRED: DhcpTrigger.EXPIRED}
    hooks = []
    for trigger, ours in mapping.items():
        async def _forward(lease: Lease, _ours: DhcpTrigger = ours) -> None:
            await handler(_ours, _to_lease(lease))
        _forward.__name__ = f"clgwd_{ours.value}"
        hooks.append(Hook(func=_forward, triggers={trigger}))
    return tuple(hooks)


class DhcpClient:
    """A running DHCPv4 client on one interface (in this process's network namespace)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    @property
    def state(self) -> str:
        return str(self._client.state.name).lower()

    @property
    def lease(self) -> DhcpLease | None:
        lease = self._client.lease
        return None if lease is None else _to_lease(lease)

    async def renew(self) -> None:
        """Renew now (what T1 does), e.g. after the link came back."""
        if self._client.state is State.BOUND:
            await self._client._renew()


@asynccontextmanager
async def dhcp_client(interface: str, *, handler: LeaseHandler, saved: Mapping[str, Any] | None,
                      save: LeaseSaver, host_name: str | None,
                      hook_timeout: float = 5.0) -> AsyncIterator[DhcpClient]:
    """Run pyroute2's DHCP client with our hooks; release the lease on exit.

    Leaving the context (also by cancellation) runs the UNBOUND hook and sends a
    DHCPRELEASE, so the address is removed and the server frees it.
    """
    config = ClientConfig(
        interface=interface, lease_type=_lease_class(saved, save), hooks=_hooks(handler),
        handle_signals=False, write_pidfile=False, release=True, hook_timeout=hook_timeout,
        vendor_id="clgwd", host_name=host_name)
    async with AsyncDHCPClient(config) as client:
        await client.bootstrap()
        yield DhcpClient(client)

