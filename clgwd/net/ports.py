"""Component ``network``: Ethernet ports reconciled against the kernel, with commit-confirm.

Desired state (the confirmed port list, or the one on trial) is reconciled, not
replayed: for each port we read what the kernel has and add, replace or remove
addresses and default routes until it matches. DHCP ports run pyroute2's client (via
our netlink wrapper) and are reconciled from its lease hooks.

Commit-confirm state machine (``TrialPhase``), changed only in ``_set_trial``::

    IDLE --propose--> ON_TRIAL --confirm--> IDLE (candidate becomes confirmed)
                          |
                          +--deadline / restart--> IDLE (previous re-applied, alert)

A link without carrier is a state shown in status, not an error to retry in a loop.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import secrets
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Self

from pydantic import ValidationError

from clgwd.component import ComponentState, StatusTracker
from clgwd.config import ClgwdConfig
from clgwd.config.loader import render_validation_error
from clgwd.config.network import NetworkConfig, PortConfig
from clgwd.errors import ClgwdError
from clgwd.net.netlink import (
    AddressInfo,
    DhcpLease,
    DhcpTrigger,
    LinkInfo,
    Netlink,
    NetlinkFailure,
    NetlinkMonitor,
    dhcp_client,
)
from clgwd.net.resolv import write_resolv_conf
from clgwd.net.trial import Ports, Trial, TrialStore
from clgwd.store import Action, Alerts, Event, Severity, Store
from clgwd.tasks import wait_at_most

_LOGGER = logging.getLogger(__name__)

ROLLBACK_ALERT = "network_rolled_back"
DHCP_RETRY_MAX = 30.0
FINISHED_TRIALS_KEPT = 8
"""Outcomes of recent trials kept (in memory) to explain a stale confirm link."""


class NothingToConfirm(ClgwdError):
    code = "nothing_to_confirm"
    http_status = 409


class WrongConfirmToken(ClgwdError):
    """A confirm token that does not name the change waiting for confirmation."""

    code = "wrong_confirm_token"
    http_status = 409


class InvalidPortConfig(ClgwdError):
    """A proposed port list failed validation; nothing was applied."""

    code = "invalid_network_config"
    http_status = 422


class TrialPhase(StrEnum):
    IDLE = "idle"
    ON_TRIAL = "on_trial"


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


def _is_global_v4(info: AddressInfo) -> bool:
    return isinstance(info.interface, ipaddress.IPv4Interface) and info.scope == 0


def _changed_ports(old: Sequence[PortConfig], new: Sequence[PortConfig]) -> list[str]:
    """Names of ports added, removed or changed (the event's properties_changed)."""
    before = {p.name: p for p in old}
    after = {p.name: p for p in new}
    return sorted(n for n in before.keys() | after.keys() if before.get(n) != after.get(n))


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


class NetworkComponent:
    """Owns the Ethernet ports, DNS servers and commit-confirm (component ``network``).

    ``netns`` manages the ports of another network namespace; used by tests only. The
    DHCP client always runs in the process's own namespace (it opens raw sockets), so
    DHCP ports require ``netns=None``.
    """

    name = "network"

    def __init__(self, config: ClgwdConfig, store: Store, *, netns: str | None = None) -> None:
        self.tracker = StatusTracker(self.name)
        self._config: NetworkConfig = config.network
        self._state_dir = config.state.dir
        self._store = store
        self._trials = TrialStore(store.db, store.settings)
        self._alerts: Alerts = store.alerts
        self._netlink = Netlink(netns)
        self._monitor = NetlinkMonitor(netns)
        self._desired: Ports = ()
        self._trial: Trial | None = None
        self._trial_changed = asyncio.Event()
        self._dhcp_changed = asyncio.Event()
        self._lease_writes: asyncio.Queue[tuple[str, Mapping[str, Any] | None]] = asyncio.Queue()
        self._leases: dict[str, DhcpLease] = {}
        self._dhcp_state: dict[str, str] = {}
        self._errors: dict[str, str] = {}
        self._links: dict[str, LinkInfo] = {}
        self._kernel_addresses: dict[int, tuple[str, ...]] = {}
        """IPv4 addresses the kernel reports per link index: status shows what is, not
        what was asked for."""
        self._listeners: list[ChangeListener] = []
        self._apply_lock = asyncio.Lock()
        self._finished: OrderedDict[str, str] = OrderedDict()
        """Confirm token -> what became of that trial, for a clear answer to a stale link."""

    # -- lifecycle --------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self.tracker.set(ComponentState.STARTING)
        await self._monitor.__aenter__()  # subscribe before the first dump
        try:
            await self._netlink.__aenter__()
            await self._refresh_links()
            await self._start_desired()
        except BaseException:
            await self._netlink.__aexit__(None, None, None)
            await self._monitor.__aexit__(None, None, None)
            raise
        self._update_status()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.tracker.set(ComponentState.STOPPING)
        await self._netlink.__aexit__(*exc_info)
        await self._monitor.__aexit__(*exc_info)
        self.tracker.set(ComponentState.STOPPED)

    async def run(self) -> None:
        """Link monitor, trial timer, DHCP supervisor and lease writer, until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._monitor_loop(), name="clgwd[network].monitor")
            tg.create_task(self._trial_loop(), name="clgwd[network].trial")
            tg.create_task(self._lease_writer(), name="clgwd[network].leases")
            tg.create_task(self._dhcp_supervisor(tg), name="clgwd[network].dhcp")

    async def apply_config(self, config: ClgwdConfig) -> None:
        """A reloaded file: new ports go on trial; other settings apply at once."""
        old, self._config = self._config, config.network
        if tuple(config.network.ports) != tuple(old.ports):
            await self._trials.write(file_seen=config.network.ports)
            await self.propose(tuple(config.network.ports), actor="local:config-file")

    # -- public API (command router, web, CLI) -----------------------------------------

    def subscribe(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    @property
    def trial(self) -> Trial | None:
        return self._trial

    @property
    def network_config(self) -> NetworkConfig:
        return self._config

    @property
    def ports(self) -> Ports:
        """The port list in force: the one on trial, else the confirmed one."""
        return self._desired

    async def propose(self, ports: Sequence[PortConfig], *, actor: str,
                      confirm_within: float | None = None) -> Trial:
        """Apply ``ports`` now; unless confirmed before the deadline, roll them back."""
        try:  # cross-port checks (overlap, unique names) before any netlink call
            NetworkConfig.model_validate({"ports": [p.model_dump() for p in ports]})
        except ValidationError as err:
            issues = render_validation_error(err)
            raise InvalidPortConfig("; ".join(f"network.{i}" for i in issues)) from None
        async with self._apply_lock:
            previous = self._trial.previous if self._trial else self._desired
            now = time.time()
            trial = Trial(candidate=tuple(ports), previous=previous,
                          deadline=now + (confirm_within or self._config.confirm.timeout),
                          actor=actor, started=now, token=secrets.token_urlsafe(18))
            async with self._store.db.transaction() as tx:
                await self._trials.write_in(tx, trial=trial)
                await self._store.history.record(tx, Event(
                    actor=actor, action=Action.EDIT, asset="Network ports",
                    subject="applied, awaiting confirmation",
                    properties_changed=_changed_ports(previous, trial.candidate),
                    extra={"deadline": trial.deadline}))
            if self._trial is not None:
                self._finish(self._trial, f"replaced by a newer change from {actor}")
            self._set_trial(trial)
            await self._reconcile(trial.candidate)
        _LOGGER.warning("Network change by %s applied; confirm within %.0f s or it is rolled "
                        "back", actor, trial.remaining())
        return trial

    async def confirm(self, actor: str, token: str | None = None) -> dict[str, Any]:
        """Keep the config on trial.

        ``token`` (the onboarding page's confirm link) must name the trial waiting for
        confirmation; without one (CLI, cloud) whatever is on trial is confirmed.
        """
        async with self._apply_lock:
            trial = self._trial
            if token is not None:
                self._check_token(trial, token)
            if trial is None:
                raise NothingToConfirm("no network change is waiting for confirmation")
            async with self._store.db.transaction() as tx:
                await self._trials.write_in(tx, confirmed=trial.candidate, trial=None)
                await self._store.history.record(tx, Event(
                    actor=actor, action=Action.EDIT, asset="Network ports",
                    subject="confirmed", extra={"ports": [p.name for p in trial.candidate]}))
            self._finish(trial, "already confirmed")
            self._set_trial(None)
        await self._alerts.clear(ROLLBACK_ALERT)
        _LOGGER.info("Network change confirmed by %s", actor)
        return {"confirmed": True}

    async def addresses(self, *, include_unconfigured: bool) -> list[tuple[str, AddressInfo]]:
        """(interface name, address) pairs of the configured ports, or of every non-lo link."""
        await self._refresh_links()
        names = {p.name for p in self._desired}
        out = []
        for info in await self._netlink.addresses():
            link = next((lk for lk in self._links.values() if lk.index == info.index), None)
            if link is None or link.loopback:
                continue
            if link.name in names or (include_unconfigured and not names):
                out.append((link.name, info))
        return out

    def _check_token(self, trial: Trial | None, token: str) -> None:
        """Raise a clear 409 unless ``token`` names ``trial`` (constant-time compare)."""
        if trial is not None and trial.token and hmac.compare_digest(
                trial.token.encode(), token.encode()):
            return
        outcome = self._finished.get(token)
        if outcome is not None:
            raise WrongConfirmToken(f"this network change was {outcome}; nothing to confirm")
        if trial is None:
            raise NothingToConfirm("no network change is waiting for confirmation; this "
                                   "confirm link is unknown or expired")
        raise WrongConfirmToken("this confirm link does not belong to the network change "
                                "waiting for confirmation (use the link shown for it)")

    def _finish(self, trial: Trial, outcome: str) -> None:
        if not trial.token:
            return
        self._finished[trial.token] = outcome
        while len(self._finished) > FINISHED_TRIALS_KEPT:
            self._finished.popitem(last=False)

    # -- start-up decision -----------------------------------------------------------

    async def _start_desired(self) -> None:
        """Pick what to apply at start: roll back a stale trial, or trial a changed file."""
        file_ports = tuple(self._config.ports)
        confirmed = await self._trials.confirmed()
        trial = await self._trials.trial()
        seen = await self._trials.file_seen()
        if trial is not None:
            _LOGGER.warning("A network change by %s was not confirmed before the restart; "
                            "rolling it back", trial.actor)
            self._desired = trial.candidate
            await self._rollback(trial, "the gateway restarted before it was confirmed")
            return
        if confirmed is None:
            await self._trials.write(confirmed=file_ports, file_seen=file_ports)
            await self._reconcile(file_ports)
            return
        await self._reconcile(confirmed)
        if seen != file_ports:
            await self._trials.write(file_seen=file_ports)
            if file_ports != confirmed:
                await self.propose(file_ports, actor="local:config-file")

    # -- commit-confirm ------------------------------------------------------------------

    def _set_trial(self, trial: Trial | None) -> None:
        """The one place the trial phase changes."""
        old = TrialPhase.ON_TRIAL if self._trial else TrialPhase.IDLE
        new = TrialPhase.ON_TRIAL if trial else TrialPhase.IDLE
        self._trial = trial
        if old != new:
            _LOGGER.info("network commit-confirm: %s -> %s", old.value, new.value)
        self._trial_changed.set()
        self._update_status()

    async def _trial_loop(self) -> None:
        while True:
            self._trial_changed.clear()
            trial = self._trial
            if trial is None:
                await self._trial_changed.wait()
                continue
            try:
                await asyncio.wait_for(self._trial_changed.wait(), trial.remaining())
            except TimeoutError:
                async with self._apply_lock:
                    if self._trial is trial:
                        await self._rollback(trial, f"not confirmed within "
                                                    f"{trial.deadline - trial.started:.0f} s")

    async def _rollback(self, trial: Trial, reason: str) -> None:
        _LOGGER.warning("Rolling back the network change by %s: %s", trial.actor, reason)
        async with self._store.db.transaction() as tx:
            await self._trials.write_in(tx, confirmed=trial.previous, trial=None)
            await self._store.history.record(tx, Event(
                actor="local:network", action=Action.EDIT, asset="Network ports",
                subject="rolled back", extra={"reason": reason, "by": trial.actor}))
            await self._alerts.raise_in(tx, ROLLBACK_ALERT, Severity.WARNING,
                                        f"Network change by {trial.actor} was rolled back: "
                                        f"{reason}")
        self._finish(trial, f"rolled back ({reason})")
        self._set_trial(None)
        await self._reconcile(trial.previous)

    # -- reconciliation --------------------------------------------------------------------

    async def _reconcile(self, ports: Ports) -> None:
        """Make the kernel match ``ports``; forget what the previous desired state added."""
        stale = {p.name: p for p in self._desired}
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
            await self._netlink.set_up(link.index)
            for info in await self._netlink.addresses(link.index):
                if _is_global_v4(info) and info.interface != want:
                    await self._netlink.remove_address(link.index, info.interface)
            await self._netlink.add_address(link.index, want)
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
            await self._netlink.remove_address(link.index, port.interface())
            if port.gateway:
                await self._netlink.remove_default_gateway(link.index, port.gateway)
        except NetlinkFailure as err:
            _LOGGER.warning("Port %s: cannot remove old config (%s)", port.name, err)

    async def _set_gateway(self, index: int, gateway: str | None) -> None:
        for existing in await self._netlink.default_gateways(index):
            if existing != gateway:
                await self._netlink.remove_default_gateway(index, existing)
        if gateway:
            await self._netlink.replace_default_gateway(index, gateway)

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

    # -- DHCP ------------------------------------------------------------------------------

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
        """Keep a DHCP client running on ``port``; retry (capped backoff) if it fails."""
        delay = 1.0
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
                await self._netlink.set_up(link.index)
                async with dhcp_client(port.name, handler=on_lease, saved=saved,
                                       save=self._queue_lease_write,
                                       host_name=socket.gethostname()) as client:
                    self._dhcp_state[port.name] = client.state
                    await self._watch_dhcp(port, client)
            except (OSError, RuntimeError, ValueError, NetlinkFailure) as err:
                self._dhcp_state[port.name] = "failed"
                self._errors[port.name] = f"DHCP client failed: {err}"
                self._update_status()
                _LOGGER.warning("Port %s: DHCP client failed (%s: %s); retrying in %.0f s",
                                port.name, type(err).__name__, err, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, DHCP_RETRY_MAX)

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
                for info in await self._netlink.addresses(link.index):
                    if _is_global_v4(info) and info.interface != lease.address:
                        await self._netlink.remove_address(link.index, info.interface)
                await self._netlink.add_address(link.index, lease.address)
                await self._set_gateway(link.index, lease.gateway)
                self._leases[port.name] = lease
                self._errors.pop(port.name, None)
            else:
                self._leases.pop(port.name, None)
                await self._netlink.remove_address(link.index, lease.address)
                if lease.gateway:
                    await self._netlink.remove_default_gateway(link.index, lease.gateway)
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

    # -- link monitoring -------------------------------------------------------------------

    async def _refresh_links(self) -> None:
        self._links = {link.name: link for link in await self._netlink.links()}

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
            have = {a.interface for a in await self._netlink.addresses(index) if _is_global_v4(a)}
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
        found: dict[int, list[str]] = {}
        for info in await self._netlink.addresses():
            if _is_global_v4(info):
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

    def _update_status(self) -> None:
        ports = self.port_states()
        trial = self._trial
        details: dict[str, Any] = {
            "ports": [p.as_json() for p in ports],
            "trial": None if trial is None else {
                "actor": trial.actor, "deadline": trial.deadline,
                "remaining": round(trial.remaining(), 1)},
        }
        problems = [f"{p.name}: {p.error or 'no carrier'}" for p in ports
                    if p.error or (p.present and not p.carrier)]
        problems += [f"{p.name}: interface not found" for p in ports if not p.present
                     and not p.error]
        if trial is not None:
            message = f"change by {trial.actor} awaits confirmation"
        elif not ports:
            message = "no ports configured"
        else:
            message = "; ".join(problems)
        state = ComponentState.DEGRADED if problems else ComponentState.RUNNING
        self.tracker.set(state, message, **details)
