"""Fixtures for the onboarding page: a real daemon in-process on loopback ports."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from blockbuster import BlockBuster

from clgwd.commands import CommandRouter
from clgwd.component import ComponentState
from clgwd.config import ClgwdConfig
from clgwd.daemon import Daemon
from clgwd.net.component import NetworkComponent
from clgwd.refcloud.server import RefCloud
from clgwd.sdnotify import Notifier
from clgwd.store import Store
from clgwd.web import auth
from clgwd.web.server import HttpServer
from tests.conftest import require_root
from tests.net.conftest import Lan

PASSWORD = "correct horse battery"
FAST_LINK = ("backoff_base: 0.05, backoff_cap: 0.4, open_timeout: 2, request_timeout: 5, "
             "status_interval: 3600, drain_timeout: 2")

TUNNEL_YAML = """\
tunnel:
  targets:
    - {name: gateway-ui, host: 127.0.0.1, ports: [8443], allow_special: [loopback]}
  tunnels:
    - {name: gateway-ui, target: gateway-ui, expiry: 1800}
"""
"""One real tunnel (docs/config-tunnel.md): starting and stopping it needs no cloud link."""


@dataclass
class Gateway:
    daemon: Daemon
    http: HttpServer
    store: Store
    base: str
    plain: str
    setup_code: str
    cloud: RefCloud | None = None
    """The reference cloud this gateway may enroll with (``cloud_gateway`` only)."""

    def register(self, method: str, result: Any, *, mutating: bool = True) -> list[Any]:
        """Stand in for another part's handler; returns the list of params received."""
        calls: list[Any] = []

        async def handler(params: Any, ctx: Any) -> Any:
            calls.append(dict(params))
            return result(params) if callable(result) else result

        self.daemon.commands.register(method, handler, mutating=mutating)
        return calls


async def start_gateway(config: ClgwdConfig) -> tuple[Gateway, asyncio.Task[int]]:
    daemon = Daemon(config, None, notifier=Notifier({}))
    task = asyncio.ensure_future(daemon.run())
    async with asyncio.timeout(20):
        while not any(c.name == "http" and c.tracker.current.state == ComponentState.RUNNING
                      for c in daemon.components):
            if task.done():
                raise AssertionError(f"daemon exited: {task.result()}")
            await asyncio.sleep(0.02)
    http = daemon.component("http")
    store = daemon.component("store")
    assert isinstance(http, HttpServer) and isinstance(store, Store)
    port = http.https_port()
    plain_port = next(p for h, p in http.bound if (h, p) not in http.bound_tls)
    code = await auth.device_setup_code(store.secrets)
    return Gateway(daemon, http, store, f"https://127.0.0.1:{port}",
                   f"http://127.0.0.1:{plain_port}", code), task


@pytest.fixture
async def gateway(make_config: Callable[..., ClgwdConfig]) -> AsyncIterator[Gateway]:
    gw, task = await start_gateway(make_config())
    yield gw
    gw.daemon.request_stop("test over")
    await asyncio.wait_for(task, 15)


@pytest.fixture
async def cloud_gateway(make_config: Callable[..., ClgwdConfig],
                        tmp_path: Path) -> AsyncIterator[Gateway]:
    """A gateway whose ``cloud.url`` is a real reference cloud on loopback (not enrolled)."""
    async with RefCloud(tmp_path / "refcloud") as cloud:
        gw, task = await start_gateway(make_config(
            f"cloud: {{url: '{cloud.url}', enrollment_ca_file: '{cloud.ca_file}', "
            f"{FAST_LINK}}}\n"))
        gw.cloud = cloud
        yield gw
        gw.daemon.request_stop("test over")
        await asyncio.wait_for(task, 15)


NETNS_PORT = ("{name: eth0, mode: static, address: 198.18.0.30/24, gateway: 198.18.0.1, "
              "dns: [198.18.0.53]}")


@pytest.fixture
async def netns_gateway(make_config: Callable[..., ClgwdConfig], tmp_path: Path,
                        monkeypatch: pytest.MonkeyPatch,
                        blockbuster: BlockBuster) -> AsyncIterator[tuple[Gateway, str]]:
    """The daemon, its network component managing ``eth0`` (198.18.0.30/24) of a fresh
    namespace: ``build_components`` runs unchanged except for ``netns=`` (the tests-only
    seam tests/net uses), so kernel changes never reach the host."""
    require_root()
    for name in blockbuster.functions:  # pyroute2 hands the namespace's socket over
        blockbuster.functions[name].can_block_in("pyroute2/process.py",
                                                 {"communicate", "start", "stop"})
    lan = Lan.new_hub()
    try:
        ns = lan.add_ns()
        lan.attach(ns)

        def in_namespace(config: ClgwdConfig, store: Store,
                         commands: CommandRouter) -> NetworkComponent:
            return NetworkComponent(config, store, commands, netns=ns)

        monkeypatch.setattr("clgwd.daemon.NetworkComponent", in_namespace)
        # pyroute2's namespace helper is a forked child: it inherits asyncio's signal
        # wakeup fd, and the SIGTERM that ends it would reach this daemon as its own.
        monkeypatch.setattr(Daemon, "_install_signal_handlers", lambda self: None)
        monkeypatch.setattr(Daemon, "_remove_signal_handlers", lambda self: None)
        gw, task = await start_gateway(make_config(
            f"network: {{resolv_conf: '{tmp_path / 'resolv.conf'}', ports: [{NETNS_PORT}]}}\n"))
        try:
            yield gw, ns
        finally:
            gw.daemon.request_stop("test over")
            await task
    finally:
        lan.remove()


@pytest.fixture
async def preflight_gateway(make_config: Callable[..., ClgwdConfig],
                            tmp_path: Path) -> AsyncIterator[Gateway]:
    """A gateway whose pre-flight targets are on loopback only: the cloud and PBX checks
    reach listeners this fixture runs, SIP-TLS a port that is bound but never listens
    (so the kernel refuses it); DNS, NTP and STUN are left unset (skipped)."""
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    closed = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    closed.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
    servers = [await asyncio.start_server(hang_up, "127.0.0.1", 0) for _ in range(2)]
    cloud_port, pbx_port = (s.sockets[0].getsockname()[1] for s in servers)
    try:
        gw, task = await start_gateway(make_config(
            f"network: {{resolv_conf: '{tmp_path / 'resolv.conf'}', preflight: {{"
            f"cloud_host: 127.0.0.1, cloud_port: {cloud_port}, "
            f"sip_tls_port: {closed.getsockname()[1]}, "
            f"pbx_host: 127.0.0.1, pbx_port: {pbx_port}, timeout: 3}}}}\n"))
        try:
            yield gw
        finally:
            gw.daemon.request_stop("test over")
            await asyncio.wait_for(task, 15)
    finally:
        for server in servers:
            server.close()
            await server.wait_closed()
        closed.close()


@pytest.fixture
async def tunnel_gateway(make_config: Callable[..., ClgwdConfig]) -> AsyncIterator[Gateway]:
    """The daemon with ``TUNNEL_YAML``: the real tunnel part lists one stopped tunnel."""
    gw, task = await start_gateway(make_config(TUNNEL_YAML))
    yield gw
    gw.daemon.request_stop("test over")
    await asyncio.wait_for(task, 15)


@pytest.fixture
async def update_gateway(make_config: Callable[..., ClgwdConfig],
                         tmp_path: Path) -> AsyncIterator[Gateway]:
    """The daemon with a fake update command (appends a line to ``tmp_path/updates``),
    a fake reboot command (writes ``tmp_path/rebooted``) and a short action delay."""
    gw, task = await start_gateway(make_config(system_yaml(tmp_path)))
    yield gw
    gw.daemon.request_stop("test over")
    await asyncio.wait_for(task, 15)


def system_yaml(tmp_path: Path) -> str:
    """``system`` config whose commands only touch files under ``tmp_path``."""
    return (f"system: {{update_command: [sh, -c, 'echo updated >> {tmp_path}/updates'], "
            f"reboot_command: [sh, -c, 'echo rebooted > {tmp_path}/rebooted'], "
            "action_delay: 0.2, reboot_timeout: 1}\n")


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    """A client that keeps cookies for IP hosts and trusts the self-signed certificate."""
    async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=False),
            cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def setup_admin(client: aiohttp.ClientSession, gw: Gateway) -> str:
    """Do the first-visit setup; returns the CSRF token of the new session."""
    async with client.post(f"{gw.base}/api/v1/session/setup",
                           json={"setup_code": gw.setup_code, "password": PASSWORD}) as resp:
        assert resp.status == 201, await resp.text()
        return str((await resp.json())["csrf_token"])
