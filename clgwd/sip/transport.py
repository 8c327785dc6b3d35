"""Sending one SIP request and waiting for its final answer, over UDP, TCP or TLS.

UDP: one shared socket per address family for every trunk (500 trunks, two sockets);
answers are matched to their request by the Via branch and then checked for the same
Call-ID and CSeq. Requests are retransmitted on RFC 3261 timer E (T1, doubling, capped
at T2) until the caller's timeout.

TCP and TLS: one connection per trunk, reused from probe to probe; a reused connection
found dead is replaced once at once, a failed connect is retried on the project's
backoff (``clgwd.retry``). TLS verifies the certificate chain (system store or a
configured bundle) and the server name, or, only when explicitly allowed, accepts a
self-signed certificate that still carries the right name and valid dates.

Host names are resolved by ``loop.getaddrinfo`` (a worker thread, off the loop).
Failures are ``ProbeError`` whose message names the cause (DNS, refused, TLS, timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import logging
import socket
import ssl
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol

from clgwd.retry import Backoff
from clgwd.sip.message import (
    Message,
    Request,
    Response,
    SipParseError,
    StreamFramer,
    parse_message,
)

_LOGGER = logging.getLogger(__name__)

T1: Final = 0.5
T2: Final = 4.0
READ_CHUNK: Final = 4096
LOCAL_IP_CACHE: Final = 1024
RECONNECT_BASE: Final = 1.0


class ProbeError(Exception):
    """A request got no usable answer; ``str()`` says why, in a technician's words."""


@dataclass
class Exchange:
    """What one request/answer exchange saw besides the answer."""

    transmissions: int = 0
    ignored: int = 0
    """Answers that matched the branch but not the Call-ID/CSeq (dropped)."""
    malformed: str = ""
    """The last parse error of an answer that looked like ours."""


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    transport: str
    tls_name: str = ""
    ca_file: Path | None = None
    allow_self_signed: bool = False


class Channel(Protocol):
    """Sends one request, returns its final answer (``Response``) or raises ProbeError."""

    async def local_address(self) -> tuple[str, int]: ...

    async def exchange(self, request: Request, limit: float,
                       seen: Exchange) -> Response: ...

    async def aclose(self) -> None: ...

    def retry_now(self) -> None:
        """Forget a pending reconnect delay (the technician asked for a check now)."""


def _matches(request: Request, answer: Message) -> bool:
    return isinstance(answer, Response) and answer.call_id == request.call_id \
        and answer.cseq == request.cseq


async def resolve(host: str, port: int, kind: socket.SocketKind) -> tuple[str, int, int]:
    """``(ip, port, family)`` for host; DNS runs in a worker thread."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return str(ip), port, socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=kind)
    except socket.gaierror as err:
        raise ProbeError(f"DNS: cannot resolve {host} ({err.strerror})") from None
    family, _, _, _, sockaddr = infos[0]
    return str(sockaddr[0]), int(sockaddr[1]), int(family)


class _Pending:
    __slots__ = ("call_id", "cseq", "future", "seen")

    def __init__(self, request: Request, seen: Exchange) -> None:
        self.call_id = request.call_id
        self.cseq = request.cseq
        self.seen = seen
        self.future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()


class UdpHub(asyncio.DatagramProtocol):
    """The shared UDP sockets (IPv4 and IPv6) and the in-flight transactions."""

    def __init__(self) -> None:
        self._transports: dict[int, asyncio.DatagramTransport] = {}
        self._opening: dict[int, asyncio.Lock] = {}
        self._pending: dict[str, _Pending] = {}
        self._local_ips: OrderedDict[str, str] = OrderedDict()

    async def _socket(self, family: int) -> asyncio.DatagramTransport:
        transport = self._transports.get(family)
        if transport is not None and not transport.is_closing():
            return transport
        lock = self._opening.setdefault(family, asyncio.Lock())
        async with lock:
            transport = self._transports.get(family)
            if transport is None or transport.is_closing():
                bind = "::" if family == socket.AF_INET6 else "0.0.0.0"
                transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
                    lambda: self, local_addr=(bind, 0), family=family)
                self._transports[family] = transport
            return transport

    def local_ip_for(self, ip: str, family: int) -> str:
        """The source address the kernel picks toward ``ip`` (no packet is sent)."""
        cached = self._local_ips.get(ip)
        if cached is not None:
            self._local_ips.move_to_end(ip)
            return cached
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.setblocking(False)
            try:
                probe.connect((ip, 9))
                local = str(probe.getsockname()[0])
            except OSError:
                local = "127.0.0.1" if family == socket.AF_INET else "::1"
        self._local_ips[ip] = local
        if len(self._local_ips) > LOCAL_IP_CACHE:
            self._local_ips.popitem(last=False)
        return local

    async def port(self, family: int) -> int:
        transport = await self._socket(family)
        return int(transport.get_extra_info("sockname")[1])

    async def exchange(self, addr: tuple[str, int], family: int, request: Request,
                       limit: float, seen: Exchange) -> Response:
        transport = await self._socket(family)
        branch = request.top_via.branch or ""
        pending = _Pending(request, seen)
        self._pending[branch] = pending
        data = request.to_bytes()
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def send(interval: float) -> None:
            # RFC 3261 timer E: T1, doubling, capped at T2, until the caller gives up.
            nonlocal handle
            transport.sendto(data, addr)
            seen.transmissions += 1
            handle = loop.call_later(interval, send, min(interval * 2, T2))

        try:
            send(T1)
            async with asyncio.timeout(limit):
                return await pending.future
        except TimeoutError:
            raise ProbeError(f"no answer within {limit:g} s over UDP "
                             f"({seen.transmissions} transmissions){_extra(seen)}") from None
        finally:
            if handle is not None:
                handle.cancel()
            self._pending.pop(branch, None)
            if not pending.future.done():
                pending.future.cancel()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            answer = parse_message(data)
            branch = answer.top_via.branch or ""
        except SipParseError as err:
            for key, waiting in self._pending.items():
                if key.encode() in data:
                    waiting.seen.malformed = str(err)
            return
        pending = self._pending.get(branch)
        if pending is None or pending.future.done():
            return
        if not (isinstance(answer, Response) and answer.call_id == pending.call_id
                and answer.cseq == pending.cseq):
            pending.seen.ignored += 1
            return
        assert isinstance(answer, Response)
        if answer.status >= 200:
            pending.future.set_result(answer)

    def error_received(self, exc: Exception) -> None:
        _LOGGER.debug("SIP UDP socket error: %s", exc)

    def close(self) -> None:
        for transport in self._transports.values():
            transport.close()
        self._transports.clear()


def _extra(seen: Exchange) -> str:
    notes = []
    if seen.malformed:
        notes.append(f"malformed answer ignored: {seen.malformed}")
    if seen.ignored:
        notes.append(f"{seen.ignored} answer(s) with another Call-ID/CSeq ignored")
    return f"; {'; '.join(notes)}" if notes else ""


class UdpChannel:
    def __init__(self, hub: UdpHub, target: Target) -> None:
        self._hub = hub
        self._target = target
        self._resolved: tuple[str, int, int] | None = None
        try:
            ipaddress.ip_address(target.host)
        except ValueError:
            self._literal = False
        else:
            self._literal = True

    async def _resolve(self) -> tuple[str, int, int]:
        """Names are resolved for every check (they may move); IP literals once."""
        if self._resolved is None or not self._literal:
            self._resolved = await resolve(self._target.host, self._target.port,
                                           socket.SOCK_DGRAM)
        return self._resolved

    async def local_address(self) -> tuple[str, int]:
        ip, _, family = await self._resolve()
        return self._hub.local_ip_for(ip, family), await self._hub.port(family)

    async def exchange(self, request: Request, limit: float, seen: Exchange) -> Response:
        ip, port, family = self._resolved or await self._resolve()
        return await self._hub.exchange((ip, port), family, request, limit, seen)

    async def aclose(self) -> None:
        """The shared socket stays open for the other trunks."""

    def retry_now(self) -> None:
        """No connection, nothing to wait for."""


def tls_context(target: Target) -> ssl.SSLContext:
    """The trunk's TLS client context (blocking: reads the CA bundle; run in a thread)."""
    if target.allow_self_signed:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        try:
            ctx = ssl.create_default_context(
                cafile=str(target.ca_file) if target.ca_file else None)
        except (OSError, ssl.SSLError) as err:
            raise ProbeError(f"TLS: cannot load the CA bundle {target.ca_file}: {err}"
                             ) from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def check_self_signed(der: bytes | None, name: str) -> None:
    """A self-signed certificate allowed explicitly must still be self-signed, current
    and issued to ``name``."""
    from cryptography import x509  # noqa: PLC0415 - only for allow_self_signed trunks

    if der is None:
        raise ProbeError("TLS: the peer sent no certificate")
    cert = x509.load_der_x509_certificate(der)
    now = dt.datetime.now(dt.UTC)
    if cert.issuer != cert.subject:
        raise ProbeError("TLS: certificate rejected: not self-signed (issued by "
                         f"{cert.issuer.rfc4514_string()}); configure its CA instead")
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise ProbeError(f"TLS: certificate rejected: outside its validity "
                         f"({cert.not_valid_before_utc:%Y-%m-%d} to "
                         f"{cert.not_valid_after_utc:%Y-%m-%d})")
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n) for n in sans.get_values_for_type(x509.DNSName)]
        names += [str(n) for n in sans.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = []
    if name.lower() not in {n.lower() for n in names}:
        raise ProbeError(f"TLS: certificate rejected: not valid for {name!r} (it names "
                         f"{', '.join(names) or 'no subjectAltName'})")


@dataclass
class StreamChannel:
    """One TCP or TLS connection to a trunk, reused while it stays open."""

    target: Target
    backoff: Backoff = field(default_factory=lambda: Backoff(RECONNECT_BASE, 30.0))
    """The project's retry policy; the owner caps it at the trunk's interval."""
    connect_limit: float = 10.0
    """Seconds a connection (TCP and TLS handshake) may take."""
    _reader: asyncio.StreamReader | None = None
    _writer: asyncio.StreamWriter | None = None
    _framer: StreamFramer = field(default_factory=StreamFramer)
    _ctx: ssl.SSLContext | None = None
    _retry_at: float = 0.0
    _last_error: str = ""

    async def local_address(self) -> tuple[str, int]:
        writer = await self._connect()
        sockname = writer.get_extra_info("sockname")
        return str(sockname[0]), int(sockname[1])

    async def _connect(self) -> asyncio.StreamWriter:
        if self._writer is not None and not self._writer.is_closing():
            return self._writer
        await self.aclose()
        wait = self._retry_at - time.monotonic()
        if wait > 0:
            raise ProbeError(f"{self._last_error} (next connection attempt in {wait:.0f} s)")
        try:
            self._writer = await self._open()
        except ProbeError as err:
            self._last_error = str(err)
            self._retry_at = time.monotonic() + self.backoff.next_delay()
            raise
        self.backoff.reset()
        return self._writer

    async def _open(self) -> asyncio.StreamWriter:
        t = self.target
        ip, port, _ = await resolve(t.host, t.port, socket.SOCK_STREAM)
        tls = t.transport == "tls"
        if tls and self._ctx is None:
            self._ctx = await asyncio.to_thread(tls_context, t)
        kind = "TLS" if tls else "TCP"
        try:
            async with asyncio.timeout(self.connect_limit):
                reader, writer = await asyncio.open_connection(
                    ip, port, ssl=self._ctx if tls else None,
                    server_hostname=t.tls_name if tls else None)
        except TimeoutError:
            raise ProbeError(f"no {kind} connection to {t.host}:{t.port} within "
                             f"{self.connect_limit:g} s") from None
        except ssl.SSLCertVerificationError as err:
            raise ProbeError(f"TLS: certificate rejected: {err.verify_message}") from None
        except ssl.SSLError as err:
            raise ProbeError(f"TLS handshake failed: {err.reason or err}") from None
        except ConnectionRefusedError:
            raise ProbeError(f"{kind} connection refused by {t.host}:{t.port}") from None
        except OSError as err:
            raise ProbeError(f"{kind} connection to {t.host}:{t.port} failed: "
                             f"{err.strerror or err}") from None
        if tls and t.allow_self_signed:
            ssl_obj = writer.get_extra_info("ssl_object")
            try:
                check_self_signed(ssl_obj.getpeercert(binary_form=True) if ssl_obj else None,
                                  t.tls_name)
            except ProbeError:
                writer.close()
                raise
        self._reader, self._framer = reader, StreamFramer()
        return writer

    async def exchange(self, request: Request, limit: float, seen: Exchange) -> Response:
        kind = self.target.transport.upper()
        try:
            async with asyncio.timeout(limit):
                reused = self._writer is not None and not self._writer.is_closing()
                try:
                    return await self._send_and_read(request, seen)
                except ConnectionError as err:
                    await self.aclose()
                    if not reused:
                        raise ProbeError(f"{kind} connection lost: {err}") from None
                    # The peer closed the idle connection: one fresh try.
                    return await self._send_and_read(request, seen)
        except TimeoutError:
            connected = self._writer is not None
            await self.aclose()
            if not connected:
                raise ProbeError(f"no {kind} connection to {self.target.host}:"
                                 f"{self.target.port} within {limit:g} s") from None
            raise ProbeError(f"no answer within {limit:g} s over {kind}"
                             f"{_extra(seen)}") from None
        except SipParseError as err:
            await self.aclose()
            raise ProbeError(f"malformed answer on the {kind} stream: {err}") from None

    async def _send_and_read(self, request: Request, seen: Exchange) -> Response:
        writer = await self._connect()
        writer.write(request.to_bytes())
        seen.transmissions += 1
        await writer.drain()
        assert self._reader is not None
        while True:
            data = await self._reader.read(READ_CHUNK)
            if not data:
                raise ConnectionResetError("closed by the peer")
            for answer in self._framer.feed(data):
                if not isinstance(answer, Response):
                    continue  # a request from the peer; not ours to answer here
                if not _matches(request, answer):
                    seen.ignored += 1
                    continue
                if answer.status >= 200:
                    return answer

    def retry_now(self) -> None:
        self._retry_at = 0.0

    async def aclose(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
                async with asyncio.timeout(1):
                    await writer.wait_closed()
