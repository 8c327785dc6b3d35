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


def instance_name(label: str, type_: str) -> str:
    """Our DNS-SD instance name; it embeds the host label, so it is unique with it."""
    return f"CloudLink Gateway {label}.{type_}"


class _ForeignAnswerListener(RecordUpdateListener):
    """Reports records that contradict our claim: an A/AAAA record for ``host`` with an
    address not ours, or an SRV record for one of our instance names pointing elsewhere.

    Conflicts are reported as text: the foreign IP address, or ``SRV name -> target``.
    """

    def __init__(self, host: str, instances: set[str], ours: Callable[[], set[IpAddress]],
                 on_foreign: Callable[[set[str]], None]) -> None:
        self.host = host.lower()
        self._instances = {name.lower() for name in instances}
        self._ours = ours
        self._on_foreign = on_foreign

    def async_update_records(self, zc: Zeroconf, now: float, records: list[RecordUpdate]) -> None:
        foreign = set()
        for update in records:
            claim = self._conflict(update.new)
            if claim is not None:
                foreign.add(claim)
        if foreign:
            self._on_foreign(foreign)

    def _conflict(self, record: Any) -> str | None:
        if record.ttl == 0:
            return None  # a goodbye, not a claim
        name = record.name.lower()
        if name == self.host and record.type in (const._TYPE_A, const._TYPE_AAAA):
            address = _record_address(record)
            if address is not None and address not in self._ours():
                return str(address)
        if name in self._instances and record.type == const._TYPE_SRV \
                and str(record.server).lower() != self.host:
            return f"SRV {record.name} -> {record.server}"
        return None


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
        self._services: list[ServiceSpec] = []
        self._on_conflict: Callable[[set[str]], None] = lambda _claims: None
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

    async def probe_host(self, label: str, window: float,
                         services: Sequence[ServiceSpec]) -> set[str]:
        """Probe every unique record we are about to publish: ``<label>.local`` (A/AAAA)
        and our service instance names (SRV). Returns the conflicting claims heard."""
        name = f"{label}.local."
        instances = {instance_name(label, spec.type_) for spec in services}
        found: set[str] = set()
        listener = _ForeignAnswerListener(name, instances, lambda: self._owned, found.update)
        zc = self._zeroconf
        questions = [DNSQuestion(name, t, const._CLASS_IN) for t in (const._TYPE_A,
                                                                    const._TYPE_AAAA)]
        questions += [DNSQuestion(n, const._TYPE_SRV, const._CLASS_IN) for n in sorted(instances)]
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
                      on_conflict: Callable[[set[str]], None]) -> None:
        """Register the host ``<label>.local`` through its services and announce them.

        Call ``probe_host`` first: it probes the host *and* the service instance names
        together, so zeroconf's own per-service probe is skipped
        (``cooperating_responders=True``); probing twice would add ~0.7 s before the
        name resolves.
        """
        self.host = f"{label}.local."
        self._services = list(services)
        self._on_conflict = on_conflict
        infos = [self._info(spec) for spec in services]
        results = await asyncio.gather(
            *(self._zeroconf.async_register_service(info, cooperating_responders=True)
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
        self._listener = _ForeignAnswerListener(
            self.host, {info.name for info in self._infos}, lambda: self._owned, on_conflict)
        self._zeroconf.async_add_listener(self._listener, None)

    def _info(self, spec: ServiceSpec) -> AsyncServiceInfo:
        label = (self.host or "").removesuffix(".local.")
        return AsyncServiceInfo(
            spec.type_, instance_name(label, spec.type_),
            parsed_addresses=[str(a) for a in self._addresses], port=spec.port,
            properties=spec.properties, server=self.host)

    async def update_addresses(self, addresses: Sequence[IpAddress]) -> None:
        """Re-publish the same name on new addresses: fresh sockets, goodbyes for the
        addresses we lost, announcements for the new ones.

        Why not ``async_update_interfaces`` + ``async_update_service``: in zeroconf
        0.154 a peer that watched the old address heard nothing after the socket
        swap (measured in a netns test), so the responder is rebuilt instead. No
        re-probe: the name is already ours. The explicit goodbyes matter because a
        responder that cached the old address (avahi does) keeps answering with it.
        """
        removed = [a for a in self._addresses if a not in addresses]
        self._addresses = list(addresses)
        self._owned.update(addresses)
        host, services = self.host, self._services
        if self._zc is None or host is None or not _v4_interfaces(self._addresses):
            return
        old, self._zc = self._zc, None
        if self._listener is not None:
            old.zeroconf.async_remove_listener(self._listener)
            self._listener = None
        self._infos = []
        await old.async_close()  # best effort: its address may already be gone
        await self.start()
        if removed:
            self._send_goodbyes(host, removed)
        await self.publish(host.removesuffix(".local."), services, self._on_conflict)

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
