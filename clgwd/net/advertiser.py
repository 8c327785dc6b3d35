"""Component ``mdns``: claims ``cloudlink.local`` (or ``-2``, ``-3``...) and keeps it current.

States (``MdnsState``), changed only in ``_set_state``::

    DISABLED (config) | WAITING (no suitable address) -> CLAIMING -> PUBLISHED
    PUBLISHED --address change (debounced)--> PUBLISHED (re-announced)
    PUBLISHED --someone else answers for our name / link-up re-check--> CLAIMING

The chosen name is persisted (``mdns.hostname``) so the box keeps its name across
restarts even if the original owner of ``cloudlink.local`` went away.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import time
from collections.abc import Callable, Sequence
from enum import StrEnum
from types import ModuleType
from typing import TYPE_CHECKING, Final, Self

from clgwd.component import ComponentState, StatusTracker
from clgwd.config import ClgwdConfig
from clgwd.config.network import MdnsConfig
from clgwd.net.component import NetworkComponent
from clgwd.net.reconcile import ChangeKind
from clgwd.retry import Backoff
from clgwd.store import Settings
from clgwd.tasks import import_off_loop

if TYPE_CHECKING:  # the wrapper (and zeroconf) is loaded when mDNS is enabled: ``_mdns``
    from clgwd.net.mdns import IpAddress, MdnsResponder, ServiceSpec

_LOGGER = logging.getLogger(__name__)

HOSTNAME_KEY: Final = "mdns.hostname"
RETRY_FIRST: Final = 1.0
RETRY_MAX: Final = 60.0
MAX_SUFFIX: Final = 99


class MdnsState(StrEnum):
    DISABLED = "disabled"
    WAITING = "waiting"
    CLAIMING = "claiming"
    PUBLISHED = "published"


def suitable(address: IpAddress) -> bool:
    """Addresses we publish: not loopback, not global IPv6 (link-local/ULA only)."""
    if address.is_loopback or address.is_unspecified or address.is_multicast:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        return address.is_link_local or address in ipaddress.IPv6Network("fc00::/7")
    return True


def _wins_tiebreak(ours: Sequence[IpAddress], theirs: set[str]) -> bool:
    """RFC 6762 section 8.2 in short: compare the address data; the greater one keeps.

    A conflict without an address (an SRV record of another host) is never won.
    """
    addresses = []
    for claim in theirs:
        try:
            addresses.append(ipaddress.ip_address(claim).packed)
        except ValueError:
            return False
    return max(a.packed for a in ours) > max(addresses)


def candidate_labels(base: str, preferred: str | None) -> list[str]:
    """The names to try in order: the persisted one, then base, base-2, base-3, ..."""
    names = [f"{base}-{n}" if n > 1 else base for n in range(1, MAX_SUFFIX + 1)]
    if preferred and preferred in names:
        names.remove(preferred)
        names.insert(0, preferred)
    return names


class MdnsAdvertiser:
    """Publishes the gateway's host name and web services on the ports' addresses."""

    name = "mdns"

    def __init__(self, config: ClgwdConfig, network: NetworkComponent, settings: Settings,
                 *, on_published: Callable[[str, Sequence[IpAddress]], None] | None = None,
                 retry: Backoff | None = None) -> None:
        self.tracker = StatusTracker(self.name)
        self._retry = retry or Backoff(RETRY_FIRST, RETRY_MAX)
        self._config: MdnsConfig = config.network.mdns
        self._network = network
        self._settings = settings
        self._on_published = on_published
        self._responder: MdnsResponder | None = None
        self._mdns: ModuleType | None = None
        """``clgwd.net.mdns``, imported when the first name is claimed."""
        self._state = MdnsState.DISABLED
        self._wake = asyncio.Event()
        self._conflict = asyncio.Event()
        self._recheck = False
        self.hostname: str | None = None
        self.published_at: float | None = None
        network.subscribe(self._on_network_change)

    @property
    def state(self) -> MdnsState:
        return self._state

    async def __aenter__(self) -> Self:
        self._set_state(MdnsState.DISABLED if not self._config.enabled else MdnsState.WAITING)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._close()
        self.tracker.set(ComponentState.STOPPED)

    async def apply_config(self, config: ClgwdConfig) -> None:
        if config.network.mdns != self._config:
            self._config = config.network.mdns
            await self._close()
            self._set_state(MdnsState.WAITING if self._config.enabled else MdnsState.DISABLED)
            self._wake.set()

    async def run(self) -> None:
        """Claim, publish and follow address changes; goodbyes on cancellation."""
        try:
            while True:
                if not self._config.enabled:
                    await self._wait_wake()
                    continue
                try:
                    await self._step()
                    self._retry.reset()
                except Exception as err:
                    # Sockets that cannot bind, a zeroconf error: keep the daemon up,
                    # report it and retry (capped exponential backoff, full jitter).
                    await self._close()
                    self._set_state(MdnsState.WAITING, f"mDNS failed ({type(err).__name__}: "
                                                       f"{err}); retrying")
                    await asyncio.sleep(self._retry.next_delay())
        finally:
            await asyncio.shield(self._close())

    # -- state machine -------------------------------------------------------------------

    def _set_state(self, state: MdnsState, message: str = "") -> None:
        if state != self._state:
            _LOGGER.info("mdns: %s -> %s%s", self._state.value, state.value,
                         f" ({message})" if message else "")
        self._state = state
        component_state = {MdnsState.WAITING: ComponentState.DEGRADED,
                           MdnsState.CLAIMING: ComponentState.STARTING}.get(
                               state, ComponentState.RUNNING)
        self.tracker.set(component_state, message or state.value, mdns_state=state.value,
                         hostname=self.hostname, published_at=self.published_at)

    async def _step(self) -> None:
        addresses = await self._addresses()
        if not any(a.version == 4 for a in addresses):
            # The responder's sockets are IPv4; AAAA records ride along with them.
            await self._close()
            self._set_state(MdnsState.WAITING, "no IPv4 address on the configured ports")
            await self._wait_wake()
            return
        if self._responder is None:
            await self._claim_and_publish(addresses)
            return
        if self._conflict.is_set() or self._recheck:
            await self._handle_conflict(addresses)
            return
        if set(addresses) != set(self._responder.addresses):
            await self._responder.update_addresses(addresses)
            _LOGGER.info("mdns: %s.local re-announced on %s", self.hostname,
                         ", ".join(map(str, addresses)))
            self._published(addresses)
        await self._wait_wake()

    async def _claim_and_publish(self, addresses: list[IpAddress]) -> None:
        self._set_state(MdnsState.CLAIMING)
        self._mdns = await import_off_loop("clgwd.net.mdns")
        responder: MdnsResponder = self._mdns.MdnsResponder(addresses)
        await responder.start()
        self._responder = responder
        preferred = await self._settings.get(HOSTNAME_KEY)
        label = await self._claim(responder, preferred if isinstance(preferred, str) else None)
        self.hostname = label
        await self._settings.set(HOSTNAME_KEY, label)
        self._conflict.clear()
        self._recheck = False
        await responder.publish(label, self._services(), self._on_conflict)
        self._published(addresses)

    async def _claim(self, responder: MdnsResponder, preferred: str | None) -> str:
        for label in candidate_labels(self._config.hostname, preferred):
            others = await responder.probe_host(label, self._config.probe_timeout,
                                                self._services())
            if not others:
                return label
            _LOGGER.warning("mdns: %s.local is answered by %s; trying the next name", label,
                            ", ".join(sorted(others)))
        raise RuntimeError(f"no free name among {self._config.hostname}-2..{MAX_SUFFIX}")

    async def _handle_conflict(self, addresses: list[IpAddress]) -> None:
        """Re-probe our name; if somebody else holds it, decide who moves on.

        After our link came up (``_recheck``) we are the newcomer on that segment and
        yield to whoever answers. When instead we *heard* another host answer for our
        name, that host is usually a newcomer re-checking (and about to move on), so we
        wait, re-probe, and only if it still answers apply RFC 6762's tie-break: the
        host with the lexicographically lower address data yields.
        """
        assert self._responder is not None
        newcomer = self._recheck
        self._conflict.clear()
        self._recheck = False
        if not newcomer:
            await asyncio.sleep(random.uniform(1.0, 2.0))  # noqa: S311 - not crypto
        others = await self._responder.probe_host(self.hostname or "",
                                                  self._config.probe_timeout, self._services())
        if not others:
            return
        if not newcomer and _wins_tiebreak(addresses, others):
            _LOGGER.warning("mdns: %s.local is also claimed by %s; keeping it (tie-break won)",
                            self.hostname, ", ".join(sorted(others)))
            return
        _LOGGER.warning("mdns: %s.local is now also answered by %s; renaming", self.hostname,
                        ", ".join(sorted(others)))
        await self._close()
        await self._settings.set(HOSTNAME_KEY, None)
        await self._claim_and_publish(addresses)

    def _published(self, addresses: Sequence[IpAddress]) -> None:
        self.published_at = time.time()
        self._set_state(MdnsState.PUBLISHED, f"{self.hostname}.local on "
                                             f"{', '.join(map(str, addresses))}")
        if self._on_published is not None and self.hostname is not None:
            self._on_published(self.hostname, addresses)

    def _services(self) -> list[ServiceSpec]:
        assert self._mdns is not None  # loaded before the first claim
        spec = self._mdns.ServiceSpec
        services: list[ServiceSpec] = [spec("_http._tcp.local.", self._config.http_port,
                                            {"path": "/onboarding"})]
        if self._config.https_port is not None:
            services.append(spec("_https._tcp.local.", self._config.https_port,
                                 {"path": "/onboarding"}))
        return services

    async def _addresses(self) -> list[IpAddress]:
        pairs = await self._network.addresses(include_unconfigured=True)
        return sorted({info.ip for _, info in pairs if suitable(info.ip)}, key=str)

    # -- events -----------------------------------------------------------------------------

    def _on_network_change(self, kind: ChangeKind) -> None:
        if kind is ChangeKind.LINK_UP and self._responder is not None:
            self._recheck = True
        self._wake.set()

    def _on_conflict(self, others: set[str]) -> None:
        _LOGGER.warning("mdns: another host answers for %s.local (%s)", self.hostname,
                        ", ".join(sorted(others)))
        self._conflict.set()
        self._wake.set()

    async def _wait_wake(self) -> None:
        """Wait for a change, then let related changes settle (the debounce)."""
        await self._wake.wait()
        await asyncio.sleep(self._config.debounce)
        self._wake.clear()

    async def _close(self) -> None:
        responder, self._responder = self._responder, None
        if responder is not None:
            await responder.close()
            _LOGGER.info("mdns: withdrew %s.local (goodbye sent)", self.hostname)
