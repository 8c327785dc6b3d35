"""The cloud link through the customer's HTTP proxy (CONNECT, RFC 9110 section 9.3.6).

``dial`` opens a TCP connection to the proxy, asks it to ``CONNECT`` to the cloud host
(with basic authentication when a user is set) and hands the tunnelled socket to a
websocket backend, which runs TLS and the websocket handshake over it as if it had
dialled the cloud itself. Both backends take the socket (``sock``), so the proxy code
exists once and its errors read the same whichever backend runs.

``ProxySettings`` owns the onboarding page's proxy setting (``cloud.proxy.get`` /
``cloud.proxy.set``): stored in the state DB, the password in the secret box. Which
proxy is in force is ``clgwd.config.proxy.effective_proxy``. The password is a
``Secret``; no message of this module contains it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
from collections.abc import Mapping
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError

from clgwd.commands import CommandContext, CommandRouter
from clgwd.config.cloud import CloudConfig
from clgwd.config.proxy import (
    PAGE_SECRET,
    PAGE_SETTING,
    NoProxyEntry,
    ProxyHost,
    ProxyTarget,
    effective_proxy,
    from_config,
    page_proxy,
)
from clgwd.config.secret import Secret
from clgwd.config.types import Port, StrictModel
from clgwd.errors import ClgwdError
from clgwd.link.wsapi import USER_AGENT, ConnectFailed, LinkConnection, OpenConnection, WsSettings
from clgwd.store import Store

_LOGGER = logging.getLogger(__name__)

SETTING: Final = PAGE_SETTING
"""State-DB setting: the page's proxy choice (without the password); ``clgwd.settings``
reads it too, to report ``cloud.proxy`` with its source."""
SECRET_PASSWORD: Final = PAGE_SECRET
MAX_RESPONSE_HEAD: Final = 16 << 10
"""Largest CONNECT answer head read before the proxy counts as broken."""


class ProxyFailed(ConnectFailed):
    """The proxy could not be reached or would not tunnel to the cloud."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class InvalidProxySetting(ClgwdError):
    """The page sent a proxy setting that cannot work."""

    code = "invalid_proxy"
    http_status = 422


# -- dialing ---------------------------------------------------------------------------------


def connect_request(target: ProxyTarget, host: str, port: int) -> bytes:
    """The CONNECT request head (basic auth when the target has a user)."""
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}", f"User-Agent: {USER_AGENT}"]
    authorization = target.authorization()
    if authorization is not None:
        lines.append(f"Proxy-Authorization: {authorization}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def parse_status(head: bytes) -> tuple[int, str]:
    """Status code and reason of the proxy's answer head; ValueError if not HTTP."""
    first = head.split(b"\r\n", 1)[0].decode("latin-1")
    version, _, rest = first.partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise ValueError(first[:80])
    return int(code), reason.strip()


def refusal(target: ProxyTarget, host: str, port: int, status: int, reason: str) -> ProxyFailed:
    """The technician's sentence for a CONNECT the proxy answered with ``status``."""
    where = f"the proxy {target.address}"
    said = f"HTTP {status}{' ' + reason if reason else ''}"
    # 407 is the standard answer; some proxies (tinyproxy) say 401 to wrong credentials.
    if status in (401, 407) and target.username is None:
        return ProxyFailed(f"{where} requires a user name and password ({said}); enter "
                           "them in the proxy settings on the Cloud page", status=status)
    if status in (401, 407):
        return ProxyFailed(f"{where} did not accept the user name {target.username!r} and "
                           f"its password ({said}); check both in the proxy settings",
                           status=status)
    return ProxyFailed(f"{where} refused to connect to {host}:{port} ({said}); ask the "
                       "network administrator to allow HTTPS (CONNECT) to this host and port",
                       status=status)


async def dial(target: ProxyTarget, host: str, port: int, limit: float) -> socket.socket:
    """A connected socket tunnelled through ``target`` to ``host:port``, bounded by
    ``limit`` seconds; raises ``ProxyFailed`` in words that name the proxy."""
    try:
        async with asyncio.timeout(limit):
            return await _dial(target, host, port)
    except TimeoutError:
        raise ProxyFailed(f"the proxy {target.address} did not open a connection to "
                          f"{host}:{port} within {limit:g} s") from None


async def _dial(target: ProxyTarget, host: str, port: int) -> socket.socket:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except OSError as err:
        raise ProxyFailed(f"the proxy's name {target.host} does not resolve "
                          f"({err.strerror or err}); check the proxy host") from None
    last: OSError | None = None
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, address)
        except OSError as err:
            sock.close()
            last = err
            continue
        try:
            await _connect(loop, sock, target, host, port)
        except BaseException:
            sock.close()
            raise
        return sock
    reason = (last.strerror or str(last)) if last is not None else "no address"
    raise ProxyFailed(f"cannot reach the proxy {target.address} ({reason}); check the proxy "
                      "host and port")


async def _connect(loop: asyncio.AbstractEventLoop, sock: socket.socket, target: ProxyTarget,
                   host: str, port: int) -> None:
    try:
        await loop.sock_sendall(sock, connect_request(target, host, port))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = await loop.sock_recv(sock, 4096)
            if not chunk:
                raise ProxyFailed(f"the proxy {target.address} closed the connection instead "
                                  f"of answering CONNECT {host}:{port}")
            head += chunk
            if len(head) > MAX_RESPONSE_HEAD:
                raise ProxyFailed(f"the proxy {target.address} sent an oversized answer")
    except OSError as err:
        raise ProxyFailed(f"the proxy {target.address} dropped the connection "
                          f"({err.strerror or err})") from None
    try:
        status, reason = parse_status(head)
    except ValueError as err:
        raise ProxyFailed(f"{target.address} did not answer like an HTTP proxy ({err!s}); "
                          "check the proxy host and port") from None
    if not 200 <= status < 300:
        raise refusal(target, host, port, status, reason)
    # Bytes after the head would be the cloud's, but TLS waits for our ClientHello first.
    _LOGGER.debug("Proxy %s tunnels to %s:%d", target.describe(), host, port)


async def open_link(open_connection: OpenConnection, proxy: ProxyTarget | None, url: str,
                    ssl_context: ssl.SSLContext | None, *, subprotocol: str,
                    settings: WsSettings) -> LinkConnection:
    """Open the websocket at ``url``, through ``proxy`` unless it is None or ``no_proxy``
    names the cloud host."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    if proxy is None or proxy.bypasses(host, port):
        return await open_connection(url, ssl_context, subprotocol, settings)
    sock = await dial(proxy, host, port, settings.open_timeout)
    try:
        return await open_connection(url, ssl_context, subprotocol, settings, sock=sock)
    except BaseException:
        sock.close()
        raise


def aiohttp_proxy(proxy: ProxyTarget | None, url: str) -> dict[str, Any]:
    """Keyword arguments that make an aiohttp request go through ``proxy`` (enrollment)."""
    parts = urlsplit(url)
    if proxy is None or proxy.bypasses(parts.hostname or "", parts.port or 443):
        return {}
    authorization = proxy.authorization()
    headers = {} if authorization is None else {"Proxy-Authorization": authorization}
    return {"proxy": f"http://{proxy.address}", "proxy_headers": headers}


# -- the page's setting ----------------------------------------------------------------------


class ProxyBody(StrictModel):
    """``cloud.proxy.set`` params."""

    mode: Literal["default", "none", "manual"]
    """default = the config file / environment; none = connect directly; manual = below."""
    host: ProxyHost | None = None
    port: Port = 3128
    username: str | None = Field(default=None, max_length=256)
    password: str | None = Field(default=None, max_length=1024)
    """None keeps the stored password; "" removes it."""
    no_proxy: list[NoProxyEntry] = Field(default_factory=list, max_length=64)


class ProxySettings:
    """The page's proxy setting and the proxy in force (``cloud.proxy.*`` commands)."""

    def __init__(self, cloud: CloudConfig, store: Store,
                 environ: Mapping[str, str] | None = None) -> None:
        self.cloud = cloud
        self._store = store
        self._environ = os.environ if environ is None else environ

    def register(self, commands: CommandRouter) -> None:
        commands.register("cloud.proxy.get", self._cmd_get, mutating=False)
        commands.register("cloud.proxy.set", self._cmd_set, mutating=True)

    async def _page(self) -> tuple[dict[str, Any] | None, ProxyTarget | None]:
        stored = await self._store.settings.get(SETTING)
        if not isinstance(stored, dict) or stored.get("mode") != "manual":
            return (stored if isinstance(stored, dict) else None), None
        password = await self._store.secrets.get(SECRET_PASSWORD)
        try:
            config, _ = page_proxy(stored, password)
        except ValueError as err:  # stored by an older version with other rules
            raise ProxyFailed(f"the proxy saved on the page is not valid any more ({err}); "
                              "save it again on the Cloud step") from None
        return stored, None if config is None else from_config(config, "page")

    async def effective(self) -> ProxyTarget | None:
        """The proxy in force; ``ProxyFailed`` when ``HTTPS_PROXY`` is unusable."""
        stored, page = await self._page()
        try:
            return effective_proxy(page, (stored or {}).get("mode") == "none",
                                   self.cloud.proxy, self.cloud.proxy_from_environment,
                                   self._environ)
        except ValueError as err:
            raise ProxyFailed(f"the proxy in the daemon's environment is unusable: {err}") \
                from None

    async def _cmd_get(self, params: Mapping[str, Any], ctx: CommandContext) -> dict[str, Any]:
        stored, page = await self._page()
        try:
            target = await self.effective()
            effective: dict[str, Any] | None = None if target is None else {
                "proxy": target.describe(), "source": target.source,
                "no_proxy": list(target.no_proxy)}
            problem = None
        except ProxyFailed as err:
            effective, problem = None, str(err)
        return {
            "mode": (stored or {}).get("mode", "default"),
            "host": page.host if page else None, "port": page.port if page else 3128,
            "username": page.username if page else None,
            "password_set": await self._store.secrets.is_set(SECRET_PASSWORD),
            "no_proxy": list(page.no_proxy) if page else [],
            "effective": effective, "problem": problem,
        }

    async def _cmd_set(self, params: Mapping[str, Any], ctx: CommandContext) -> dict[str, Any]:
        try:
            body = ProxyBody.model_validate(dict(params))
        except ValidationError as err:
            issue = err.errors()[0]
            where = ".".join(str(p) for p in issue["loc"]) or "body"
            raise InvalidProxySetting(f"{where}: {issue['msg']}") from None
        if body.mode == "manual" and body.host is None:
            raise InvalidProxySetting("host: enter the proxy's host name or IP address")
        username = (body.username or "").strip() or None
        value: dict[str, Any] = {"mode": body.mode}
        if body.mode == "manual":
            value |= {"host": body.host, "port": body.port, "username": username,
                      "no_proxy": body.no_proxy}
        async with self._store.db.transaction() as tx:
            await self._store.settings.set_in(tx, SETTING, value)
            if body.mode != "manual" or username is None or body.password == "":
                await tx.execute("DELETE FROM secrets WHERE name = ?", (SECRET_PASSWORD,))
            elif body.password is not None:
                await self._store.secrets.put_in(tx, SECRET_PASSWORD, Secret(body.password))
        _LOGGER.info("Cloud proxy set to %s by %s", body.mode if body.mode != "manual" else
                     f"http://{username + '@' if username else ''}{body.host}:{body.port}",
                     ctx.actor)
        return await self._cmd_get({}, ctx)

