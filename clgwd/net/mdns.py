"""The one module that imports zeroconf: publishing ``cloudlink.local`` and its services.

python-zeroconf probes *service instance* names but not *host* names, so two gateways on
one LAN would both answer for ``cloudlink.local``. ``MdnsResponder.probe_host`` asks the
link who answers for a name before we claim it (RFC 6762 section 8 in spirit: query,
listen, then announce), and a record listener notices when somebody else starts
answering for our name later, so the owner can move to ``cloudlink-2.local``.

Registration and withdrawal use ``await (await zc.async_register_service(...))``: the
outer await is the probe, the inner one the announcements (or goodbye packets). With a
single await nothing reaches the wire before ``async_close()`` and peers keep the name
cached for its whole TTL.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from zeroconf import (  # type: ignore[attr-defined]
    DNSAddress,
    DNSQuestion,
    IPVersion,
    NonUniqueNameException,
    RecordUpdate,
    RecordUpdateListener,
    Zeroconf,
    const,
)
from zeroconf._protocol.outgoing import DNSOutgoing
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

_LOGGER = logging.getLogger(__name__)

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class ServiceSpec:
    """One DNS-SD service to publish on the host, e.g. ``_http._tcp`` on port 80."""

    type_: str
    port: int
    properties: dict[str, str]


class _ForeignAnswerListener(RecordUpdateListener):
    """Calls ``on_foreign`` when an A/AAAA record for ``host`` names an address not ours."""

    def __init__(self, host: str, ours: Callable[[], set[IpAddress]],
                 on_foreign: Callable[[set[IpAddress]], None]) -> None:
        self.host = host.lower()
        self._ours = ours
        self._on_foreign = on_foreign

    def async_update_records(self, zc: Zeroconf, now: float, records: list[RecordUpdate]) -> None:
        foreign = set()
        for update in records:
            record = update.new
            if record.name.lower() != self.host or record.type not in (const._TYPE_A,
                                                                      const._TYPE_AAAA):
                continue
            if record.ttl == 0:
                continue  # a goodbye, not a claim
            address = _record_address(record)
            if address is not None and address not in self._ours():
                foreign.add(address)
        if foreign:
            self._on_foreign(foreign)


def _record_address(record: Any) -> IpAddress | None:
    try:
        packed = record.address
        family = socket.AF_INET if record.type == const._TYPE_A else socket.AF_INET6
        return ipaddress.ip_address(socket.inet_ntop(family, packed))
    except (AttributeError, ValueError, OSError):
        return None


def _v4_interfaces(addresses: Iterable[IpAddress]) -> list[str]:
    return sorted({str(a) for a in addresses if isinstance(a, ipaddress.IPv4Address)})


class MdnsResponder:
    """An mDNS responder bound to explicit addresses (never ``InterfaceChoice.All``).

    Binding to the ports' addresses keeps multicast off interfaces we do not manage;
    IPv6 link-local addresses are published as AAAA records while the sockets stay
    IPv4 (IPv6 sockets need per-interface scope handling not worth its risk here).
    """

    def __init__(self, addresses: Sequence[IpAddress]) -> None:
        self._addresses = list(addresses)
        self._zc: AsyncZeroconf | None = None
        self._infos: list[AsyncServiceInfo] = []
        self._listener: _ForeignAnswerListener | None = None
        self._owned: set[IpAddress] = set(addresses)
        """Every address we published; our own late answers for an old one are no conflict."""
        self.host: str | None = None

    @property
    def addresses(self) -> list[IpAddress]:
        return list(self._addresses)

    async def start(self) -> None:
        interfaces = _v4_interfaces(self._addresses)
        if not interfaces:
            raise ValueError("mDNS needs at least one IPv4 address to bind")
        self._zc = AsyncZeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only)
        await self._zc.zeroconf.async_wait_for_start()

    @property
    def _zeroconf(self) -> Zeroconf:
        if self._zc is None:
            raise RuntimeError("mDNS responder is not started")
        return self._zc.zeroconf

    async def probe_host(self, label: str, window: float) -> set[IpAddress]:
        """Ask who answers for ``<label>.local``; return the addresses that are not ours."""
        name = f"{label}.local."
        found: set[IpAddress] = set()
        listener = _ForeignAnswerListener(name, lambda: self._owned, found.update)
        zc = self._zeroconf
        questions = [DNSQuestion(name, t, const._CLASS_IN) for t in (const._TYPE_A,
                                                                    const._TYPE_AAAA)]
        zc.async_add_listener(listener, questions)
        try:
            for attempt in range(3):  # three queries, like RFC 6762 probes
                out = DNSOutgoing(const._FLAGS_QR_QUERY)
                for question in questions:
                    # The first query asks for unicast answers (QU): a responder that
                    # multicast the record within the last second must not multicast it
                    # again, but it answers a QU question directly.
                    question.unicast = attempt == 0
                    out.add_question(question)
                zc.async_send(out)
                await asyncio.sleep(window / 3)
                if found:
                    break
        finally:
            zc.async_remove_listener(listener)
        return found

    async def publish(self, label: str, services: Sequence[ServiceSpec],
                      on_conflict: Callable[[set[IpAddress]], None]) -> None:
        """Register the host ``<label>.local`` through its services and announce them."""
        self.host = f"{label}.local."
        infos = [self._info(spec) for spec in services]
        # Probe all services at once (each probe takes ~0.75 s), then wait for the
        # announcements; sequential registration would double the time to resolvable.
        results = await asyncio.gather(
            *(self._zeroconf.async_register_service(info, allow_name_change=True)
              for info in infos), return_exceptions=True)
        announcements = []
        for info, result in zip(infos, results, strict=True):
            if isinstance(result, NonUniqueNameException):
                _LOGGER.warning("mDNS service name %s is taken; continuing without it", info.name)
            elif isinstance(result, BaseException):
                raise result
            else:
                self._infos.append(info)
                announcements.append(result)
        await asyncio.gather(*announcements)
        self._listener = _ForeignAnswerListener(self.host, lambda: self._owned, on_conflict)
        self._zeroconf.async_add_listener(self._listener, None)

    def _info(self, spec: ServiceSpec) -> AsyncServiceInfo:
        label = (self.host or "").removesuffix(".local.")
        return AsyncServiceInfo(
            spec.type_, f"CloudLink Gateway {label}.{spec.type_}",
            parsed_addresses=[str(a) for a in self._addresses], port=spec.port,
            properties=spec.properties, server=self.host)

    async def update_addresses(self, addresses: Sequence[IpAddress]) -> None:
        """Move the sockets to the new addresses, say goodbye to the old A/AAAA records
        and announce the new ones.

        The explicit goodbye matters: the new records carry the cache-flush bit, but a
        responder that cached the old address (avahi does) may keep answering with it.
        """
        removed = [a for a in self._addresses if a not in addresses]
        self._addresses = list(addresses)
        self._owned.update(addresses)
        interfaces = _v4_interfaces(self._addresses)
        if self._zc is None or not interfaces:
            return
        await self._zc.zeroconf.async_update_interfaces(interfaces)
        if removed and self.host is not None:
            self._send_goodbyes(self.host, removed)
        for info in self._infos:
            info.addresses = [a.packed for a in self._addresses]
            await (await self._zc.async_update_service(info))

    def _send_goodbyes(self, host: str, addresses: Sequence[IpAddress]) -> None:
        """Records with TTL 0 for addresses we no longer have (RFC 6762 section 10.1)."""
        out = DNSOutgoing(const._FLAGS_QR_RESPONSE | const._FLAGS_AA)
        for address in addresses:
            rtype = const._TYPE_A if address.version == 4 else const._TYPE_AAAA
            out.add_answer_at_time(DNSAddress(host, rtype, const._CLASS_IN | const._CLASS_UNIQUE,
                                              0, address.packed), 0)
        self._zeroconf.async_send(out)

    async def unpublish(self) -> None:
        """Send goodbye packets for everything we registered."""
        if self._zc is None:
            return
        if self._listener is not None:
            self._zc.zeroconf.async_remove_listener(self._listener)
            self._listener = None
        infos, self._infos = self._infos, []
        for info in infos:
            await (await self._zc.async_unregister_service(info))

    async def close(self) -> None:
        """Goodbyes, then close the sockets; safe to call twice."""
        if self._zc is None:
            return
        try:
            await self.unpublish()
        finally:
            zc, self._zc = self._zc, None
            await zc.async_close()
