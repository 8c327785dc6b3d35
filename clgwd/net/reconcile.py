"""The kernel side of the ``network`` component: ports reconciled, links watched, status.

Desired state (the confirmed port list, or the one on trial) is reconciled, not
replayed: for each port we read what the kernel has and add, replace or remove
addresses and default routes until it matches, and put a static address back when
somebody removes it by hand. A link without carrier is a state shown in status, not an
error to retry in a loop.

``PortReconciler`` is the base of ``DhcpSupervisor`` (``clgwd.net.dhcp``), itself the
base of ``NetworkComponent`` (``clgwd.net.component``), which adds commit-confirm.
"""

from __future__ import annotations

import abc
import asyncio
import ipaddress
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clgwd.component import StatusTracker
from clgwd.config.network import NetworkConfig, PortConfig
from clgwd.net.linkinfo import AddressInfo, DhcpLease, LinkInfo, NetlinkFailure
from clgwd.net.resolv import write_resolv_conf
from clgwd.net.trial import Ports
from clgwd.tasks import import_off_loop, wait_at_most

if TYPE_CHECKING:  # pyroute2 loads with the wrapper, when netlink is first needed
    from clgwd.net.netlink import Netlink, NetlinkMonitor

_LOGGER = logging.getLogger(__name__)


class ChangeKind(StrEnum):
    """What listeners (the mDNS advertiser) are told about."""

    ADDRESSES = "addresses"
    LINK_UP = "link_up"


ChangeListener = Callable[[ChangeKind], None]


@dataclass(frozen=True)
class PortState:
    """One configured port as status pages show it."""

    name: str
    mode: str
    present: bool = False
    carrier: bool = False
    operstate: str = "ABSENT"
    addresses: tuple[str, ...] = ()
    gateway: str | None = None
    dns: tuple[str, ...] = ()
    dhcp_state: str | None = None
    lease_expires: float | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "mode": self.mode, "present": self.present,
                "carrier": self.carrier, "operstate": self.operstate,
                "addresses": list(self.addresses), "gateway": self.gateway,
                "dns": list(self.dns), "dhcp_state": self.dhcp_state,
                "lease_expires": self.lease_expires, "error": self.error}


def is_global_v4(info: AddressInfo) -> bool:
    return isinstance(info.interface, ipaddress.IPv4Interface) and info.scope == 0


class PortReconciler(abc.ABC):
    """Makes the kernel match the desired ports and keeps the links' state for status."""

    def __init__(self, config: NetworkConfig, state_dir: Path, tracker: StatusTracker,
                 netns: str | None) -> None:
        self.tracker = tracker
        self._config = config
        self._state_dir = state_dir
        self._netns = netns
        self._netlink: Netlink | None = None
        self._monitor: NetlinkMonitor | None = None
        self._netlink_open = asyncio.Event()
        self._desired: Ports = ()
        self._dhcp_changed = asyncio.Event()
        self._leases: dict[str, DhcpLease] = {}
        self._dhcp_state: dict[str, str] = {}
        self._errors: dict[str, str] = {}
        self._links: dict[str, LinkInfo] = {}
        self._kernel_addresses: dict[int, tuple[str, ...]] = {}
        """IPv4 addresses the kernel reports per link index: status shows what is, not
        what was asked for."""
        self._listeners: list[ChangeListener] = []

    # -- netlink, opened when first needed ----------------------------------------------

    async def _open_netlink(self) -> None:
        """Import the pyroute2 wrapper (in a thread) and open netlink, once: when there
        are ports to manage or somebody asks for addresses. A gateway that manages no
        ports (a developer's machine, a VM whose network the host owns) never loads
        pyroute2. The monitor subscribes before the first dump."""
        if self._netlink is not None:
            return
        netlink = await import_off_loop("clgwd.net.netlink")
        monitor = netlink.NetlinkMonitor(self._netns)
        await monitor.__aenter__()
        kernel = netlink.Netlink(self._netns)
        try:
            await kernel.__aenter__()
        except BaseException:
            await monitor.__aexit__(None, None, None)
            raise
        self._monitor, self._netlink = monitor, kernel
        await self._refresh_links()
        self._netlink_open.set()

    async def _close_netlink(self, *exc_info: object) -> None:
        kernel, monitor, self._netlink, self._monitor = self._netlink, self._monitor, None, None
        if kernel is not None:
            await kernel.__aexit__(*exc_info)
        if monitor is not None:
            await monitor.__aexit__(*exc_info)

    @property
    def _kernel(self) -> Netlink:
        assert self._netlink is not None, "netlink is opened before the first kernel call"
        return self._netlink

    def subscribe(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    @property
    def network_config(self) -> NetworkConfig:
        return self._config

    @property
    def ports(self) -> Ports:
        """The port list in force: the one on trial, else the confirmed one."""
        return self._desired

    async def addresses(self, *, include_unconfigured: bool) -> list[tuple[str, AddressInfo]]:
        """(interface name, address) pairs of the configured ports, or of every non-lo link."""
        await self._open_netlink()
        await self._refresh_links()
        names = {p.name for p in self._desired}
        out = []
        for info in await self._kernel.addresses():
            link = next((lk for lk in self._links.values() if lk.index == info.index), None)
            if link is None or link.loopback:
                continue
            if link.name in names or (include_unconfigured and not names):
                out.append((link.name, info))
        return out

    @abc.abstractmethod
    def _update_status(self) -> None:
        """Publish the status (``NetworkComponent`` adds the commit-confirm state)."""

    # -- reconciliation --------------------------------------------------------------------

    async def _reconcile(self, ports: Ports) -> None:
        """Make the kernel match ``ports``; forget what the previous desired state added."""
        stale = {p.name: p for p in self._desired}
        if ports or stale:
            await self._open_netlink()
        self._desired = ports
        for port in ports:
            old = stale.pop(port.name, None)
            if old is not None and old.mode == "static" and port.mode == "dhcp":
                await self._unapply_static(old)
            if port.mode == "static":
                self._leases.pop(port.name, None)
                await self._apply_static(port)
        for old in stale.values():
            if old.mode == "static":
                await self._unapply_static(old)
        self._dhcp_changed.set()
        await self._write_dns()
        await self._refresh_status()
        self._notify(ChangeKind.ADDRESSES)

    async def _apply_static(self, port: PortConfig) -> None:
        link = self._links.get(port.name)
        if link is None:
            self._errors[port.name] = "interface not found"
            _LOGGER.warning("Port %s: interface not found; will apply when it appears", port.name)
            return
        want = port.interface()
        try:
            await self._kernel.set_up(link.index)
            for info in await self._kernel.addresses(link.index):
                if is_global_v4(info) and info.interface != want:
                    await self._kernel.remove_address(link.index, info.interface)
            await self._kernel.add_address(link.index, want)
            await self._set_gateway(link.index, port.gateway)
        except NetlinkFailure as err:
            self._errors[port.name] = str(err)
            _LOGGER.error("Port %s: cannot apply %s (%s)", port.name, want, err)  # noqa: TRY400
            return
        self._errors.pop(port.name, None)
        _LOGGER.info("Port %s: static %s via %s", port.name, want, port.gateway or "-")

    async def _unapply_static(self, port: PortConfig) -> None:
        link = self._links.get(port.name)
        if link is None or port.address is None:
            return
        try:
            await self._kernel.remove_address(link.index, port.interface())
            if port.gateway:
                await self._kernel.remove_default_gateway(link.index, port.gateway)
        except NetlinkFailure as err:
            _LOGGER.warning("Port %s: cannot remove old config (%s)", port.name, err)

    async def _set_gateway(self, index: int, gateway: str | None) -> None:
        for existing in await self._kernel.default_gateways(index):
            if existing != gateway:
                await self._kernel.remove_default_gateway(index, existing)
        if gateway:
            await self._kernel.replace_default_gateway(index, gateway)

    async def _write_dns(self) -> None:
        path = self._config.resolv_conf
        if path is None or not self._desired:
            return  # DNS not managed: never touch the host's resolver config
        servers: list[str] = []
        for port in self._desired:
            if port.mode == "static":
                servers.extend(port.dns)
            elif port.name in self._leases:
                servers.extend(port.dns or self._leases[port.name].dns)
        if not servers:
            return  # no port knows a DNS server (yet): keep what is there
        try:
            await write_resolv_conf(path, servers)
        except OSError as err:
            _LOGGER.error("Cannot write %s (%s)", path, err)  # noqa: TRY400

    # -- link monitoring -------------------------------------------------------------------

    async def _refresh_links(self) -> None:
        self._links = {link.name: link for link in await self._kernel.links()}

    async def _wait_links_changed(self, limit: float | None = None) -> None:
        """Wait for any link or address change, or at most ``limit`` seconds."""
        event = asyncio.Event()
        listener: ChangeListener = lambda _kind: event.set()  # noqa: E731
        self._listeners.append(listener)
        try:
            await wait_at_most(event.wait(), limit)
        finally:
            self._listeners.remove(listener)

    async def _monitor_loop(self) -> None:
        await self._netlink_open.wait()
        assert self._monitor is not None
        async for event in self._monitor.events():
            try:
                await self._on_event(event.kind, event.index)
            except NetlinkFailure as err:
                # One failed read must not stop the monitor; the next event re-reads.
                _LOGGER.warning("Handling a %s change failed (%s)", event.kind, err)

    async def _on_event(self, kind: str, index: int) -> None:
        if kind == "link":
            before = {n: lk.carrier for n, lk in self._links.items()}
            await self._refresh_links()
            await self._on_links_changed(before)
        elif kind == "addr":
            await self._restore_static(index)
            await self._refresh_status()
            self._notify(ChangeKind.ADDRESSES)

    async def _restore_static(self, index: int) -> None:
        """Somebody changed addresses on a static port: put the desired one back.

        Desired state is reconciled, not applied once: an ``ip addr del`` by hand (or a
        stray DHCP client) must not leave the port without its configured address.
        """
        for port in self._desired:
            link = self._links.get(port.name)
            if port.mode != "static" or link is None or link.index != index:
                continue
            have = {a.interface for a in await self._kernel.addresses(index) if is_global_v4(a)}
            if have != {port.interface()}:
                _LOGGER.warning("Port %s: addresses changed outside clgwd (%s); restoring %s",
                                port.name, ", ".join(map(str, have)) or "none",
                                port.interface())
                await self._apply_static(port)

    async def _on_links_changed(self, before: Mapping[str, bool]) -> None:
        for port in self._desired:
            link = self._links.get(port.name)
            if link is None:
                continue
            if port.name not in before:
                _LOGGER.info("Port %s: interface appeared", port.name)
                if port.mode == "static":
                    await self._apply_static(port)
            if link.carrier and not before.get(port.name, False):
                _LOGGER.info("Port %s: carrier up", port.name)
                self._notify(ChangeKind.LINK_UP)
            elif not link.carrier and before.get(port.name, False):
                _LOGGER.warning("Port %s: no carrier (cable unplugged?)", port.name)
        self._update_status()
        self._notify(ChangeKind.ADDRESSES)

    def _notify(self, kind: ChangeKind) -> None:
        for listener in list(self._listeners):
            listener(kind)

    # -- status ----------------------------------------------------------------------------

    async def _refresh_status(self) -> None:
        """Read the addresses back from the kernel, then publish the status."""
        if self._netlink is None:  # no ports managed: nothing to read back
            self._update_status()
            return
        found: dict[int, list[str]] = {}
        for info in await self._kernel.addresses():
            if is_global_v4(info):
                found.setdefault(info.index, []).append(str(info.interface))
        self._kernel_addresses = {index: tuple(a) for index, a in found.items()}
        self._update_status()

    def port_states(self) -> list[PortState]:
        out = []
        for port in self._desired:
            link = self._links.get(port.name)
            state = PortState(name=port.name, mode=port.mode, error=self._errors.get(port.name),
                              dhcp_state=self._dhcp_state.get(port.name)
                              if port.mode == "dhcp" else None)
            if link is not None:
                state = replace(state, present=True, carrier=link.carrier,
                                operstate=link.operstate,
                                addresses=self._kernel_addresses.get(link.index, ()))
            lease = self._leases.get(port.name)
            if port.mode == "static":
                state = replace(state, gateway=port.gateway, dns=tuple(port.dns))
            elif lease is not None:
                expires = lease.obtained + lease.lease_time if lease.lease_time else None
                state = replace(state, gateway=lease.gateway, dns=tuple(port.dns or lease.dns),
                                lease_expires=expires)
            out.append(state)
        return out
