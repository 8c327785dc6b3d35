"""Pre-flight: can this network reach what the gateway needs? One line per check.

Each check speaks the real protocol, so "port open" is not mistaken for "service
works": DNS sends an A query to the configured name servers (read from the resolv.conf
the network component writes), NTP an SNTP client request, STUN a binding request
(RFC 5389), the proxy an HTTP CONNECT. TCP checks (cloud 443, SIP-TLS 5061, PBX) time
the connection. All checks run concurrently, each bounded by ``preflight.timeout``.

Targets come from the configuration by default (``PreflightTargets``): the cloud host and
port from ``cloud.url``, the PBX from the PBX settings (file or page), the proxy the link
uses (page, ``cloud.proxy`` or ``HTTPS_PROXY``), the name servers of the resolv.conf and
the time servers the system's NTP client uses. ``network.preflight.*`` keys override.
With the link's proxy in force, the cloud is checked through it (a CONNECT with the
proxy's credentials) instead of directly, as the link will reach it.
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
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from clgwd.commands import CommandContext, CommandRouter
from clgwd.config import ClgwdConfig
from clgwd.config.network import NetworkConfig, PreflightConfig
from clgwd.config.pbx import NETWORK_TYPES
from clgwd.config.proxy import ProxyTarget, effective_proxy
from clgwd.errors import ClgwdError

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


@dataclass(frozen=True)
class PreflightTargets:
    """What the rest of the configuration says to check (``network.preflight`` keys
    override each)."""

    cloud_host: str | None = None
    cloud_port: int = 443
    pbx_host: str | None = None
    pbx_port: int | None = None
    proxy: ProxyTarget | None = None
    proxy_problem: str | None = None
    """Why the link's proxy setting is unusable (reported as a failed proxy check)."""
    ntp_servers: tuple[str, ...] = ()


def targets_from_config(config: ClgwdConfig, pbx: Mapping[str, Any] | None,
                        proxy: ProxyTarget | None, ntp_servers: tuple[str, ...] = (),
                        proxy_problem: str | None = None) -> PreflightTargets:
    """Defaults from ``cloud.url`` and the PBX settings (``pbx`` is ``pbx.get``'s answer,
    which includes a setting saved on the page; None = the config file's ``pbx``)."""
    cloud_host, cloud_port = None, 443
    if config.cloud.url is not None:
        parts = urlsplit(config.cloud.url)
        cloud_host, cloud_port = parts.hostname, parts.port or 443
    if pbx is None:
        network = config.pbx.type in NETWORK_TYPES and bool(config.pbx.host)
        pbx = {"address": config.pbx.host if network else None,
               "port": config.pbx.effective_port if network else None}
    address, port = pbx.get("address"), pbx.get("port")
    return PreflightTargets(
        cloud_host=cloud_host, cloud_port=cloud_port,
        pbx_host=address if isinstance(address, str) and address else None,
        pbx_port=port if isinstance(port, int) and port else None,
        proxy=proxy, proxy_problem=proxy_problem, ntp_servers=ntp_servers)


def config_targets(config: Callable[[], ClgwdConfig], commands: CommandRouter,
                   proxy: Callable[[], Awaitable[ProxyTarget | None]], *,
                   root: Path | None = None) -> Callable[[], Awaitable[PreflightTargets]]:
    """The running daemon's defaults: ``config`` the current config, the PBX through
    ``pbx.get`` (so a PBX saved on the page counts), ``proxy`` the link's proxy in force."""
    async def targets() -> PreflightTargets:
        pbx: Mapping[str, Any] | None = None
        with contextlib.suppress(ClgwdError):  # no sync component: the file's pbx section
            answer = await commands.call("pbx.get", {}, CommandContext("local:preflight"))
            pbx = answer if isinstance(answer, Mapping) else None
        problem = None
        try:
            chosen = await proxy()
        except Exception as err:
            chosen, problem = None, str(err)
        ntp = await asyncio.to_thread(system_ntp_servers, root)
        return targets_from_config(await _with_link_address(config(), commands), pbx,
                                   chosen, ntp, problem)

    return targets


async def _with_link_address(config: ClgwdConfig, commands: CommandRouter) -> ClgwdConfig:
    """``config`` with the cloud address in force (``cloud.status``: one typed at the
    gateway wins over the file's ``cloud.url``); unchanged without a link."""
    with contextlib.suppress(ClgwdError):
        status = await commands.call("cloud.status", {}, CommandContext("local:preflight"))
        url = status.get("cloud_url") if isinstance(status, Mapping) else None
        if isinstance(url, str) and url != config.cloud.url:
            return config.model_copy(update={
                "cloud": config.cloud.model_copy(update={"url": url})})
    return config


async def local_targets(config: ClgwdConfig, environ: Mapping[str, str] | None = None, *,
                        root: Path | None = None) -> PreflightTargets:
    """``clgwd preflight --local`` (no daemon): the file's PBX and proxy (or
    ``HTTPS_PROXY``); a PBX or proxy saved on the page is not read."""
    problem = None
    try:
        chosen = effective_proxy(None, False, config.cloud.proxy,
                                 config.cloud.proxy_from_environment,
                                 os.environ if environ is None else environ)
    except ValueError as err:
        chosen, problem = None, str(err)
    ntp = await asyncio.to_thread(system_ntp_servers, root)
    return targets_from_config(config, None, chosen, ntp, problem)


NTP_FILES: Final = (
    ("timesyncd", "etc/systemd/timesyncd.conf"), ("timesyncd", "etc/systemd/timesyncd.conf.d"),
    ("chrony", "etc/chrony/chrony.conf"), ("chrony", "etc/chrony.conf"),
    ("chrony", "etc/chrony/sources.d"), ("ntp", "etc/ntpsec/ntp.conf"),
    ("ntp", "etc/ntp.conf"),
)


SYSTEM_ROOT = Path("/")
"""Where ``system_ntp_servers`` looks by default (the test suite points it elsewhere, so
no test ever asks the host's real time servers)."""


def system_ntp_servers(root: Path | None = None) -> tuple[str, ...]:
    """The time servers the host's NTP client uses (blocking): systemd-timesyncd's
    ``NTP=`` (else ``FallbackNTP=``), chrony's and ntpd's ``server``/``pool`` lines."""
    found: list[str] = []
    fallback: list[str] = []
    for kind, relative in NTP_FILES:
        path = (SYSTEM_ROOT if root is None else root) / relative
        files = sorted(path.glob("*.conf")) + sorted(path.glob("*.sources")) \
            if path.is_dir() else [path]
        for file in files:
            try:
                text = file.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            for line in text.splitlines():
                words = line.split("#", 1)[0].strip()
                if kind == "timesyncd" and "=" in words:
                    key, _, value = words.partition("=")
                    target = {"NTP": found, "FallbackNTP": fallback}.get(key.strip())
                    if target is not None:
                        target += value.split()
                elif kind != "timesyncd" and words.split()[:1] in (["server"], ["pool"]) \
                        and len(words.split()) > 1:
                    found.append(words.split()[1])
    servers = found or fallback
    return tuple(dict.fromkeys(servers))[:4]


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


async def check_proxy(proxy: ProxyTarget, host: str, port: int) -> str:
    """CONNECT through ``proxy`` (with its credentials) to ``host:port``."""
    try:
        reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    except OSError as err:
        raise CheckFailed(f"proxy unreachable: {err.strerror or err}") from None
    authorization = proxy.authorization()
    auth = "" if authorization is None else f"Proxy-Authorization: {authorization}\r\n"
    try:
        writer.write(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}\r\n"
                     .encode())
        await writer.drain()
        status = (await reader.readline()).decode("latin-1").strip()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    parts = status.split(" ", 2)
    if len(parts) >= 2 and parts[1] in ("401", "407"):
        raise CheckFailed(f"CONNECT refused: {status}: the proxy wants a user name and "
                          "password" + (" and did not accept these" if authorization else ""))
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


def _plan(cfg: PreflightConfig, nameservers: list[str],
          targets: PreflightTargets) -> list[tuple[str, str, Awaitable[str]]]:
    plan: list[tuple[str, str, Awaitable[str]]] = []
    explicit = cfg.model_fields_set
    cloud_host = cfg.cloud_host or targets.cloud_host
    cloud_port = cfg.cloud_port if "cloud_port" in explicit or cfg.cloud_host \
        else targets.cloud_port
    ntp_servers = cfg.ntp_servers or list(targets.ntp_servers)
    # A name the system's name servers must resolve: the cloud's, else a time server's.
    dns_name = cfg.dns_name or next(
        (n for n in (cloud_host, *ntp_servers) if n is not None and not _is_ip(n)), None)
    if dns_name is not None and not _is_ip(dns_name):
        plan.append(("dns", dns_name, check_dns(dns_name, nameservers)))
    plan += [("ntp", f"{h}:123", check_ntp(h)) for h in ntp_servers]
    link_proxy = targets.proxy
    proxied = cloud_host is not None and link_proxy is not None \
        and not link_proxy.bypasses(cloud_host, cloud_port)
    if cloud_host is not None and not proxied:
        plan.append(("cloud", f"{cloud_host}:{cloud_port}", check_tcp(cloud_host, cloud_port)))
    if cfg.stun_host is not None:
        plan += [("stun", f"{cfg.stun_host}:{p}/udp", check_stun(cfg.stun_host, p))
                 for p in cfg.stun_ports]
    sip_host = cfg.sip_tls_host or cloud_host
    if sip_host is not None:
        plan.append(("sip-tls", f"{sip_host}:{cfg.sip_tls_port}",
                     check_tcp(sip_host, cfg.sip_tls_port)))
    pbx_host = cfg.pbx_host or targets.pbx_host
    if pbx_host is not None:
        port = (cfg.pbx_port if cfg.pbx_host else targets.pbx_port) or cfg.pbx_port or 5060
        plan.append(("pbx", f"{pbx_host}:{port}", check_tcp(pbx_host, port)))
    proxy = ProxyTarget(cfg.proxy.host, cfg.proxy.port) if cfg.proxy is not None \
        else link_proxy
    if proxy is not None and cloud_host is not None:
        plan.append(("proxy", proxy.address, check_proxy(proxy, cloud_host, cloud_port)))
    elif targets.proxy_problem is not None:
        plan.append(("proxy", "cloud proxy setting", _fail(targets.proxy_problem)))
    return plan


async def _fail(reason: str) -> str:
    raise CheckFailed(reason)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


async def run_preflight(config: NetworkConfig,
                        targets: PreflightTargets | None = None) -> dict[str, Any]:
    """Run every check concurrently; return the report as JSON data. ``targets``: the
    defaults from the rest of the configuration (``network.preflight`` overrides)."""
    resolv = config.resolv_conf or Path("/etc/resolv.conf")  # read-only here
    nameservers = await asyncio.to_thread(read_nameservers, resolv)
    cfg = config.preflight
    plan = _plan(cfg, nameservers, targets or PreflightTargets())
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(_timed(name, target, probe, cfg.timeout),
                                name=f"clgwd[network].preflight.{name}")
                 for name, target, probe in plan]
    results = [task.result() for task in tasks]
    _LOGGER.info("Pre-flight: %d of %d checks passed", sum(r.ok for r in results), len(results))
    return report_json(results)
