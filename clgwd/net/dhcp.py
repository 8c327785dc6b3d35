"""DHCP supervision of the ``network`` component: one client task per DHCP port.

pyroute2's client runs behind our netlink wrapper (``dhcp_client``); its lease hooks
apply what a lease grants, and the lease is stored so a restart asks for the same
address. A client that fails is started again after a delay of the one retry policy
(``clgwd.retry``: capped exponential, full jitter).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from clgwd.config.network import PortConfig
from clgwd.net.linkinfo import DhcpLease, DhcpTrigger, NetlinkFailure
from clgwd.net.reconcile import ChangeKind, PortReconciler, is_global_v4
from clgwd.retry import Backoff
from clgwd.tasks import import_off_loop

_LOGGER = logging.getLogger(__name__)

DHCP_RETRY_FIRST = 1.0
DHCP_RETRY_MAX = 30.0


def _lease_path(state_dir: Path, ifname: str) -> Path:
    return state_dir / "dhcp" / f"{ifname}.lease.json"


def _read_lease(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        _LOGGER.warning("Ignoring unreadable DHCP lease %s (%s)", path, err)
        return None
    return data if isinstance(data, dict) else None


def _write_lease(path: Path, data: Mapping[str, Any] | None) -> None:
    if data is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    tmp.replace(path)


class DhcpSupervisor(PortReconciler):
    """Starts, watches and restarts the DHCP clients of the desired DHCP ports."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lease_writes: asyncio.Queue[tuple[str, Mapping[str, Any] | None]] = (
            asyncio.Queue())
        self.dhcp_retry: Callable[[], Backoff] = lambda: Backoff(DHCP_RETRY_FIRST,
                                                                 DHCP_RETRY_MAX)
        """One retry policy per supervised DHCP client (a test may replace it)."""

    async def _dhcp_supervisor(self, tg: asyncio.TaskGroup) -> None:
        """Start and stop one DHCP task per DHCP port as the desired state changes."""
        running: dict[str, tuple[PortConfig, asyncio.Task[None]]] = {}
        while True:
            await self._dhcp_changed.wait()
            self._dhcp_changed.clear()
            wanted = {p.name: p for p in self._desired if p.mode == "dhcp"}
            for name, (port, task) in list(running.items()):
                if wanted.get(name) != port or task.done():
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    del running[name]
            for name, port in wanted.items():
                if name not in running:
                    running[name] = (port, tg.create_task(self._run_dhcp(port),
                                                          name=f"clgwd[network].dhcp.{name}"))

    async def _run_dhcp(self, port: PortConfig) -> None:
        """Keep a DHCP client running on ``port``; retry (``clgwd.retry``) if it fails."""
        retry = self.dhcp_retry()
        path = _lease_path(self._state_dir, port.name)
        while True:
            link = self._links.get(port.name)
            if link is None:
                self._dhcp_state[port.name] = "waiting for interface"
                self._update_status()
                await self._wait_links_changed()
                continue
            saved = await asyncio.to_thread(_read_lease, path)

            async def on_lease(trigger: DhcpTrigger, lease: DhcpLease,
                               _port: PortConfig = port) -> None:
                await self._on_lease(_port, trigger, lease)

            try:
                await self._kernel.set_up(link.index)
                netlink = await import_off_loop("clgwd.net.netlink")
                async with netlink.dhcp_client(port.name, handler=on_lease, saved=saved,
                                       save=self._queue_lease_write,
                                       host_name=socket.gethostname()) as client:
                    self._dhcp_state[port.name] = client.state
                    await self._watch_dhcp(port, client)
            except (OSError, RuntimeError, ValueError, NetlinkFailure) as err:
                self._dhcp_state[port.name] = "failed"
                self._errors[port.name] = f"DHCP client failed: {err}"
                self._update_status()
                delay = retry.next_delay()
                _LOGGER.warning("Port %s: DHCP client failed (%s: %s); retrying in %.0f s",
                                port.name, type(err).__name__, err, delay)
                await asyncio.sleep(delay)

    async def _watch_dhcp(self, port: PortConfig, client: Any) -> None:
        """Mirror the client's state into status; renew when the carrier comes back."""
        had_carrier = self._links.get(port.name, None)
        carrier = bool(had_carrier and had_carrier.carrier)
        while True:
            self._dhcp_state[port.name] = client.state
            self._update_status()
            await self._wait_links_changed(limit=1.0)
            link = self._links.get(port.name)
            now_carrier = bool(link and link.carrier)
            if now_carrier and not carrier:
                _LOGGER.info("Port %s: carrier back; renewing the lease", port.name)
                await client.renew()
            carrier = now_carrier

    async def _on_lease(self, port: PortConfig, trigger: DhcpTrigger, lease: DhcpLease) -> None:
        """Apply or remove what a lease grants (called from the DHCP client's hooks)."""
        link = self._links.get(port.name)
        if link is None:
            return
        if any(p.name == port.name and p.mode == "static" for p in self._desired):
            # The port became static and the client is releasing: the static config may
            # use the very same address, so leave the kernel alone. (A port removed from
            # the config does lose its released address: the server may reassign it.)
            self._leases.pop(port.name, None)
            self._queue_lease_write(port.name, None)
            return
        _LOGGER.info("Port %s: DHCP %s %s (gateway %s, DNS %s)", port.name, trigger.value,
                     lease.address, lease.gateway, ", ".join(lease.dns) or "-")
        try:
            if trigger in {DhcpTrigger.BOUND, DhcpTrigger.RENEWED, DhcpTrigger.REBOUND}:
                for info in await self._kernel.addresses(link.index):
                    if is_global_v4(info) and info.interface != lease.address:
                        await self._kernel.remove_address(link.index, info.interface)
                await self._kernel.add_address(link.index, lease.address)
                await self._set_gateway(link.index, lease.gateway)
                self._leases[port.name] = lease
                self._errors.pop(port.name, None)
            else:
                self._leases.pop(port.name, None)
                await self._kernel.remove_address(link.index, lease.address)
                if lease.gateway:
                    await self._kernel.remove_default_gateway(link.index, lease.gateway)
                if trigger is DhcpTrigger.EXPIRED:
                    self._errors[port.name] = "lease expired; asking for a new one"
        except NetlinkFailure as err:
            self._errors[port.name] = str(err)
            _LOGGER.error("Port %s: cannot apply DHCP lease (%s)", port.name, err)  # noqa: TRY400
        if trigger is DhcpTrigger.EXPIRED or trigger is DhcpTrigger.UNBOUND:
            self._queue_lease_write(port.name, None)
        await self._write_dns()
        await self._refresh_status()
        self._notify(ChangeKind.ADDRESSES)

    def _queue_lease_write(self, ifname: str, data: Mapping[str, Any] | None) -> None:
        self._lease_writes.put_nowait((ifname, data))

    async def _lease_writer(self) -> None:
        """Persist leases off the loop (pyroute2 hands them over synchronously)."""
        while True:
            ifname, data = await self._lease_writes.get()
            try:
                await asyncio.to_thread(_write_lease, _lease_path(self._state_dir, ifname), data)
            except OSError as err:
                _LOGGER.warning("Cannot store the DHCP lease of %s (%s)", ifname, err)
