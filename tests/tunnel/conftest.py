"""Tunnel test harness: an in-memory link, LAN targets on 127.0.0.1, a reference cloud.

``MemoryLink`` behaves like the cloud link's binary lane: each direction is a bounded
queue (``send_binary`` waits when it is full = back-pressure) drained by one reader
task that calls the far endpoint's ``on_binary`` in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from clgwd.commands import CommandContext, CommandRouter
from clgwd.config import ClgwdConfig, parse_config
from clgwd.protocol import wire
from clgwd.protocol.channel import BinaryEndpoint, LinkDown
from clgwd.protocol.streams import Stream
from clgwd.protocol.wire import Frame, OpenRequest
from clgwd.refcloud.tunnels import CloudTunnels, LaunchProxy, TicketAuthority
from clgwd.store import Store
from clgwd.tunnel.allowlist import Resolver, default_resolver
from clgwd.tunnel.component import TunnelComponent

GATEWAY_ID = "gw-test-1"
MGMT_PORT = 18080
"""The gateway's (unbound) HTTP port in tests: a management port the allowlist refuses."""


class MemoryPipe:
    """One direction of the link: bounded queue + single in-order reader."""

    def __init__(self, target: BinaryEndpoint, maxsize: int) -> None:
        self.target = target
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize)
        self.closed = False
        self.messages = 0
        self.paused = asyncio.Event()
        self.paused.set()

    async def send_binary(self, data: bytes) -> None:
        if self.closed:
            raise LinkDown("memory link is down")
        await self.queue.put(bytes(data))
        if self.closed:
            raise LinkDown("memory link is down")

    async def reader(self) -> None:
        while True:
            data = await self.queue.get()
            await self.paused.wait()
            self.messages += 1
            await self.target.on_binary(data)


class MemoryLink:
    """Connects a gateway endpoint and a cloud endpoint in memory."""

    def __init__(self, gateway: BinaryEndpoint, cloud: BinaryEndpoint, maxsize: int = 64) -> None:
        self.gateway = gateway
        self.cloud = cloud
        self.maxsize = maxsize
        self.to_cloud: MemoryPipe | None = None
        self.to_gateway: MemoryPipe | None = None
        self._readers: list[asyncio.Task[None]] = []

    async def up(self, tg: asyncio.TaskGroup) -> None:
        self.to_cloud = MemoryPipe(self.cloud, self.maxsize)
        self.to_gateway = MemoryPipe(self.gateway, self.maxsize)
        await self.gateway.on_link_up(self.to_cloud)
        await self.cloud.on_link_up(self.to_gateway)
        self._readers = [tg.create_task(self.to_cloud.reader(), name="test.to_cloud"),
                         tg.create_task(self.to_gateway.reader(), name="test.to_gateway")]

    async def down(self) -> None:
        for pipe in (self.to_cloud, self.to_gateway):
            if pipe is not None:
                pipe.closed = True
                while not pipe.queue.empty():
                    pipe.queue.get_nowait()
        for task in self._readers:
            task.cancel()
        for task in self._readers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.gateway.on_link_down()
        await self.cloud.on_link_down()


class RecordingChannel:
    """A fake cloud: records every frame the gateway sends."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.changed = asyncio.Event()

    async def send_binary(self, data: bytes) -> None:
        self.frames.append(wire.decode(bytes(data)))
        self.changed.set()

    async def wait_for(self, ftype: wire.FrameType, stream_id: int | None = None,
                       timeout: float = 5.0) -> Frame:
        async with asyncio.timeout(timeout):
            while True:
                for frame in self.frames:
                    if frame.type is ftype and (stream_id is None or
                                                frame.stream_id == stream_id):
                        return frame
                self.changed.clear()
                await self.changed.wait()


@dataclass
class EchoServer:
    """A LAN target on 127.0.0.1 that echoes (or stalls, or sinks) what it receives."""

    mode: str = "echo"
    server: asyncio.Server | None = None
    port: int = 0
    received: int = 0
    sent: int = 0
    connections: int = 0
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            if self.mode == "stall":
                await asyncio.sleep(3600)
            if self.mode == "http":  # a LAN admin web UI
                await reader.readuntil(b"\r\n\r\n")
                body = b"<html><title>MiVB admin</title></html>"
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                             b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
                             + body)
                await writer.drain()
                return
            if self.mode == "source":  # a LAN service streaming a large response
                chunk = b"s" * 65536
                while True:
                    writer.write(chunk)
                    self.sent += len(chunk)
                    await writer.drain()
            while data := await reader.read(65536):
                self.received += len(data)
                if self.mode == "echo":
                    writer.write(data)
                    await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def lan_server(mode: str = "echo") -> AsyncIterator[EchoServer]:
    echo = EchoServer(mode)
    echo.server = await asyncio.start_server(echo.handle, "127.0.0.1", 0)
    echo.port = echo.server.sockets[0].getsockname()[1]
    try:
        yield echo
    finally:
        for w in echo.writers:
            w.transport.abort()
        echo.server.close()


def tunnel_yaml(authority: TicketAuthority, port: int, extra: str = "",
                tunnel_extra: str = "", gateway_id: str = GATEWAY_ID) -> str:
    return (
        "tunnel:\n"
        f"  gateway_id: {gateway_id}\n"
        f"  authority_public_key: {authority.public_key_b64}\n"
        "  targets:\n"
        f"    - {{name: echo, host: 127.0.0.1, ports: [{port}], allow_special: [loopback]}}\n"
        f"    - {{name: rebind, host: rebind.lan.test, ports: [{port}], "
        "allow_special: [loopback]}\n"
        f"    - {{name: lan, host: 198.51.100.0/24, ports: [80, 443]}}\n"
        f"    - {{name: named, host: ui.lan.test, ports: [{port}, 443]}}\n"
        f"    - {{name: wide, host: 0.0.0.0/0, ports: [80, {port}]}}\n"
        f"    - {{name: wide6, host: '::/0', ports: [80, {port}]}}\n"
        f"    - {{name: self, host: 127.0.0.1, ports: [{MGMT_PORT}], allow_special: [loopback]}}\n"
        "  tunnels:\n"
        f"    - {{name: echo, target: echo{tunnel_extra}}}\n"
        "    - {name: lan, target: lan}\n"
        "    - {name: named, target: named}\n"
        "    - {name: rebind, target: rebind}\n"
        "    - {name: wide, target: wide}\n"
        "    - {name: wide6, target: wide6}\n"
        "    - {name: self, target: self}\n"
    ) + extra


@dataclass
class Harness:
    """A gateway tunnel component and a reference cloud joined by a memory link."""

    config: ClgwdConfig
    store: Store
    component: TunnelComponent
    cloud: CloudTunnels
    link: MemoryLink
    authority: TicketAuthority
    router: CommandRouter
    tg: asyncio.TaskGroup
    echo: EchoServer

    async def start(self, name: str = "echo", **params: Any) -> Any:
        return await self.router.call("tunnel.start", {"name": name, **params},
                                      CommandContext(actor="cloud:admin@example.test"))

    def proxy(self, *, host: str = "127.0.0.1", port: int | None = None,
              tunnel: str = "echo", gateway: str = GATEWAY_ID,
              http_errors: bool = False, rewrite_host: bool = False) -> LaunchProxy:
        return LaunchProxy(self.cloud, self.authority, self.tg, gateway=gateway, tunnel=tunnel,
                           host=host, port=port or self.echo.port,
                           admin="admin@example.test", http_errors=http_errors,
                           rewrite_host=rewrite_host)

    async def audit(self, rtype: str | None = None) -> list[dict[str, Any]]:
        records = await self.component.audit.records()
        return [{"type": r.type, **r.record} for r in records
                if rtype is None or r.type == rtype]

    async def wait_audit(self, rtype: str, count: int = 1, timeout: float = 5.0,
                         ) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout):
            while len(found := await self.audit(rtype)) < count:
                await asyncio.sleep(0.02)
        return found

    async def open_raw(self, request: OpenRequest) -> Stream:
        """Open a stream with an arbitrary OPEN body; returns the stream or raises."""
        loop = asyncio.get_running_loop()
        mine, theirs = socket.socketpair()
        self._sockets.append(theirs)
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, mine)
        try:
            return await self.cloud.open(transport, request)
        except BaseException:
            transport.abort()  # a refused open leaves the socket to us
            raise

    def ticket(self, port: int | None = None, **overrides: Any) -> str:
        fields: dict[str, Any] = {"gateway": GATEWAY_ID, "tunnel": "echo",
                                  "host": "127.0.0.1", "port": port or self.echo.port,
                                  "admin": "admin@example.test"}
        fields.update(overrides)
        return self.authority.issue(**fields)

    _sockets: list[socket.socket] = field(default_factory=list)


HarnessFactory = Callable[..., Awaitable[Harness]]


@pytest.fixture
def tunnel_config(state_dir: Path, tmp_path: Path) -> Callable[[str], ClgwdConfig]:
    """A config with a test tunnel section (the HTTP listener is never started here)."""

    def _make(extra_yaml: str) -> ClgwdConfig:
        return parse_config(
            f"state: {{dir: {state_dir}}}\n"
            f"http: {{listen: [{{host: 127.0.0.1, port: {MGMT_PORT}}}]}}\n"
            f"control: {{socket: {tmp_path / 'control.sock'}}}\n" + extra_yaml)

    return _make


@pytest.fixture
async def harness(tunnel_config: Callable[[str], ClgwdConfig]) -> AsyncIterator[HarnessFactory]:
    """Build a Harness; ``extra``/``tunnel_extra`` add YAML, ``mode`` picks the LAN target."""
    stack = contextlib.AsyncExitStack()
    harnesses: list[Harness] = []

    async def build(*, extra: str = "", tunnel_extra: str = "", mode: str = "echo",
                    resolver: Resolver = default_resolver, maxsize: int = 64,
                    link: bool = True, cloud_limits: Any = None,
                    target_port: int | None = None) -> Harness:
        authority = TicketAuthority()
        echo = await stack.enter_async_context(lan_server(mode))
        if target_port is not None:  # an external LAN service (iperf3) instead of ours
            echo.port = target_port
        config = tunnel_config(tunnel_yaml(authority, echo.port, extra, tunnel_extra))
        store = await stack.enter_async_context(Store(config))
        router = CommandRouter()
        component = TunnelComponent(config, store, router, resolver=resolver)
        tg = await stack.enter_async_context(asyncio.TaskGroup())
        await stack.enter_async_context(component)
        kwargs = {"limits": cloud_limits} if cloud_limits is not None else {}
        cloud = CloudTunnels(tg, **kwargs)
        mlink = MemoryLink(component.mux, cloud, maxsize)
        runner = tg.create_task(component.run(), name="test.tunnel.run")
        h = Harness(config, store, component, cloud, mlink, authority, router, tg, echo)
        harnesses.append(h)

        async def _stop() -> None:
            runner.cancel()
            if mlink.to_cloud is not None and not mlink.to_cloud.closed:
                await mlink.down()
            await cloud.on_link_down()
            for sock in h._sockets:
                sock.close()
            assert component.scope.crashes == 0, "a tunnel task crashed"

        stack.push_async_callback(_stop)
        if link:
            await mlink.up(tg)
        return h

    async with stack:
        yield build
