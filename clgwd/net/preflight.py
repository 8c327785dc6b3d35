"""Pre-flight: can this network reach what the gateway needs? One line per check.

Each check speaks the real protocol, so "port open" is not mistaken for "service
works": DNS sends an A query to the configured name servers (read from the resolv.conf
the network component writes), NTP an SNTP client request, STUN a binding request
(RFC 5389), the proxy an HTTP CONNECT. TCP checks (cloud 443, SIP-TLS 5061, PBX) time
the connection. All checks run concurrently, each bounded by ``preflight.timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import secrets
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from clgwd.config.network import NetworkConfig, PreflightConfig

_LOGGER = logging.getLogger(__name__)

NTP_EPOCH_OFFSET: Final = 2_208_988_800
STUN_MAGIC: Final = 0x2112A442
STUN_BINDING_REQUEST: Final = 0x0001
STUN_BINDING_SUCCESS: Final = 0x0101
STUN_XOR_MAPPED_ADDRESS: Final = 0x0020


class CheckFailed(Exception):
    """A check ran and failed; the message is what the operator reads."""


@dataclass(frozen=True)
class CheckResult:
    """One line of the report."""

    name: str
    target: str
    ok: bool
    seconds: float
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "target": self.target, "ok": self.ok,
                "seconds": round(self.seconds, 4), "detail": self.detail}


def report_json(results: list[CheckResult]) -> dict[str, Any]:
    return {"ok": all(r.ok for r in results), "checks": [r.as_json() for r in results]}


def render_report(report: dict[str, Any]) -> str:
    lines = []
    for check in report["checks"]:
        verdict = "PASS" if check["ok"] else "FAIL"
        lines.append(f"{verdict}  {check['name']:<10} {check['target']:<28} "
                     f"{check['seconds'] * 1000:7.1f} ms  {check['detail']}")
    if not lines:
        lines.append("no pre-flight targets configured (network.preflight)")
    return "\n".join(lines)


# -- protocol probes ------------------------------------------------------------------------


class _OneDatagram(asyncio.DatagramProtocol):
    """Collects the first datagram that ``accept`` likes (ignores stray packets)."""

    def __init__(self, accept: Callable[[bytes], bool]) -> None:
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._accept = accept

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.answer.done() and self._accept(data):
            self.answer.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


async def _udp_exchange(host: str, port: int, request: bytes,
                        accept: Callable[[bytes], bool]) -> bytes:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _OneDatagram(accept), remote_addr=(host, port))
    try:
        transport.sendto(request)
        return await protocol.answer
    except ConnectionRefusedError:
        raise CheckFailed("port closed (ICMP port unreachable)") from None
    finally:
        transport.close()


def dns_query(name: str, txid: int) -> bytes:
    header = struct.pack("!HHHHHH", txid, 0x0100, 1, 0, 0, 0)  # RD, one question
    labels = b"".join(bytes([len(p)]) + p.encode("ascii") for p in name.rstrip(".").split("."))
    return header + labels + b"\x00" + struct.pack("!HH", 1, 1)  # A, IN


def dns_answer_addresses(data: bytes, txid: int) -> list[str]:
    """The A records of a response, or CheckFailed with the response code."""
    rid, flags, qd, an, _, _ = struct.unpack("!HHHHHH", data[:12])
    if rid != txid or not flags & 0x8000:
        raise CheckFailed("not an answer to our query")
    if flags & 0xF:
        raise CheckFailed(f"server answered rcode {flags & 0xF}"
                          + (" (name not found)" if flags & 0xF == 3 else ""))
    offset = 12
    for _ in range(qd):
        offset = _skip_name(data, offset) + 4
    out = []
    for _ in range(an):
        offset = _skip_name(data, offset)
        rtype, _cls, _ttl, length = struct.unpack("!HHIH", data[offset:offset + 10])
        offset += 10
        if rtype == 1 and length == 4:
            out.append(socket.inet_ntoa(data[offset:offset + 4]))
        offset += length
    return out


def _skip_name(data: bytes, offset: int) -> int:
    while True:
        length = data[offset]
        if length == 0:
            return offset + 1
        if length & 0xC0 == 0xC0:
            return offset + 2
        offset += length + 1


def _txid_matches(txid: int) -> Callable[[bytes], bool]:
    return lambda data: len(data) >= 12 and data[:2] == txid.to_bytes(2, "big")


def read_nameservers(path: Path) -> list[str]:
    """``nameserver`` lines of a resolv.conf (blocking)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    servers = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            servers.append(parts[1])
    return servers


async def check_dns(name: str, servers: list[str]) -> str:
    if not servers:
        raise CheckFailed("no name servers configured")
    failures = []
    for server in servers:
        txid = secrets.randbits(16)
        try:
            data = await _udp_exchange(server, 53, dns_query(name, txid),
                                       _txid_matches(txid))
            addresses = dns_answer_addresses(data, txid)
        except (CheckFailed, OSError) as err:
            failures.append(f"{server}: {err}")
            continue
        if addresses:
            return f"{name} -> {', '.join(addresses)} (via {server})"
        failures.append(f"{server}: no A record")
    raise CheckFailed("; ".join(failures))


def sntp_request() -> bytes:
    return b"\x23" + b"\x00" * 39 + struct.pack("!II", *_ntp_now())  # LI 0, VN 4, mode 3


def _ntp_now() -> tuple[int, int]:
    now = time.time() + NTP_EPOCH_OFFSET
    return int(now), int((now % 1) * 2**32)


async def check_ntp(host: str, port: int = 123) -> str:
    request = sntp_request()
    sent = time.time()
    data = await _udp_exchange(host, port, request,
                               lambda d: len(d) >= 48 and d[24:32] == request[40:48])
    mode, stratum = data[0] & 0x7, data[1]
    if mode != 4 or not 1 <= stratum <= 15:
        raise CheckFailed(f"not a usable server reply (mode {mode}, stratum {stratum})")
    seconds, fraction = struct.unpack("!II", data[40:48])
    server_time = seconds - NTP_EPOCH_OFFSET + fraction / 2**32
    offset = server_time - (sent + time.time()) / 2
    return f"stratum {stratum}, clock offset {offset:+.3f} s"


def stun_request(txid: bytes) -> bytes:
    return struct.pack("!HHI", STUN_BINDING_REQUEST, 0, STUN_MAGIC) + txid


def stun_mapped_address(data: bytes, txid: bytes) -> str:
    mtype, length, magic = struct.unpack("!HHI", data[:8])
    if magic != STUN_MAGIC or data[8:20] != txid or mtype != STUN_BINDING_SUCCESS:
        raise CheckFailed(f"not a binding success (type 0x{mtype:04x})")
    offset = 20
    while offset + 4 <= 20 + length:
        atype, alen = struct.unpack("!HH", data[offset:offset + 4])
        value = data[offset + 4:offset + 4 + alen]
        if atype == STUN_XOR_MAPPED_ADDRESS and len(value) >= 8 and value[1] == 1:
            port = struct.unpack("!H", value[2:4])[0] ^ (STUN_MAGIC >> 16)
            ip = struct.unpack("!I", value[4:8])[0] ^ STUN_MAGIC
            return f"{ipaddress.IPv4Address(ip)}:{port}"
        offset += 4 + alen + (-alen % 4)
    raise CheckFailed("binding success without XOR-MAPPED-ADDRESS")


async def check_stun(host: str, port: int) -> str:
    txid = os.urandom(12)
    data = await _udp_exchange(host, port, stun_request(txid),
                               lambda d: len(d) >= 20 and d[8:20] == txid)
    return f"public address {stun_mapped_address(data, txid)}"


async def check_tcp(host: str, port: int) -> str:
    try:
        _, writer = await asyncio.open_connection(host, port)
    except ConnectionRefusedError:
        raise CheckFailed("connection refused") from None
    except OSError as err:
        raise CheckFailed(err.strerror or str(err)) from None
    peer = writer.get_extra_info("peername")
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return f"connected to {peer[0]}:{peer[1]}"


async def check_proxy(proxy_host: str, proxy_port: int, host: str, port: int) -> str:
    try:
        reader, writer = await asyncio.open_connection(proxy_host, proxy_port)
    except OSError as err:
        raise CheckFailed(f"proxy unreachable: {err.strerror or err}") from None
    try:
        writer.write(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        await writer.drain()
        status = (await reader.readline()).decode("latin-1").strip()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    parts = status.split(" ", 2)
    if len(parts) < 2 or parts[1] != "200":
        raise CheckFailed(f"CONNECT refused: {status or 'no answer'}")
    return f"CONNECT {host}:{port}: {status}"


# -- the report ------------------------------------------------------------------------------


async def _timed(name: str, target: str, probe: Awaitable[str], limit: float) -> CheckResult:
    start = time.monotonic()
    try:
        async with asyncio.timeout(limit):
            detail = await probe
        ok = True
    except TimeoutError:
        ok, detail = False, f"no answer within {limit:g} s"
    except CheckFailed as err:
        ok, detail = False, str(err)
    except OSError as err:
        ok, detail = False, f"{type(err).__name__}: {err.strerror or err}"
    return CheckResult(name, target, ok, time.monotonic() - start, detail)


def _plan(cfg: PreflightConfig, nameservers: list[str]) -> list[tuple[str, str, Awaitable[str]]]:
    plan: list[tuple[str, str, Awaitable[str]]] = []
    dns_name = cfg.dns_name or cfg.cloud_host
    if dns_name is not None and not _is_ip(dns_name):
        plan.append(("dns", dns_name, check_dns(dns_name, nameservers)))
    plan += [("ntp", f"{h}:123", check_ntp(h)) for h in cfg.ntp_servers]
    if cfg.cloud_host is not None:
        plan.append(("cloud", f"{cfg.cloud_host}:{cfg.cloud_port}",
                     check_tcp(cfg.cloud_host, cfg.cloud_port)))
    if cfg.stun_host is not None:
        plan += [("stun", f"{cfg.stun_host}:{p}/udp", check_stun(cfg.stun_host, p))
                 for p in cfg.stun_ports]
    sip_host = cfg.sip_tls_host or cfg.cloud_host
    if sip_host is not None:
        plan.append(("sip-tls", f"{sip_host}:{cfg.sip_tls_port}",
                     check_tcp(sip_host, cfg.sip_tls_port)))
    if cfg.pbx_host is not None:
        port = cfg.pbx_port or 5060
        plan.append(("pbx", f"{cfg.pbx_host}:{port}", check_tcp(cfg.pbx_host, port)))
    if cfg.proxy is not None and cfg.cloud_host is not None:
        plan.append(("proxy", f"{cfg.proxy.host}:{cfg.proxy.port}",
                     check_proxy(cfg.proxy.host, cfg.proxy.port, cfg.cloud_host,
                                 cfg.cloud_port)))
    return plan


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


async def run_preflight(config: NetworkConfig) -> dict[str, Any]:
    """Run every configured check concurrently; return the report as JSON data."""
    resolv = config.resolv_conf or Path("/etc/resolv.conf")  # read-only here
    nameservers = await asyncio.to_thread(read_nameservers, resolv)
    cfg = config.preflight
    plan = _plan(cfg, nameservers)
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(_timed(name, target, probe, cfg.timeout),
                                name=f"clgwd[network].preflight.{name}")
                 for name, target, probe in plan]
    results = [task.result() for task in tasks]
    _LOGGER.info("Pre-flight: %d of %d checks passed", sum(r.ok for r in results), len(results))
    return report_json(results)
