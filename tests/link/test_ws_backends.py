"""Both websocket backends of the link behave the same against a websockets server.

Each test runs on ``clgwd.link.ws`` (websockets) and ``clgwd.link.ws_picows`` (picows):
limits, errors and back-pressure are the link's contract, not the library's. The link
end-to-end suites (``tests/link``, ``tests/tunnel/test_end_to_end.py``) run on both
backends too, through the ``link_backend`` fixture.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import importlib.util
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

import clgwd
from clgwd.config import ConfigError, parse_config
from clgwd.link import backends, ws, ws_picows
from clgwd.link.backends import opener
from clgwd.link.ws_picows import PicowsConnection
from clgwd.link.wsapi import (
    BinarySinkConnection,
    Closed,
    ConnectFailed,
    HandshakeRejected,
    LinkConnection,
    WsSettings,
)
from clgwd.protocol.sockopts import NOTSENT_LOWAT

SUBPROTOCOL = "clgwd.v1"
SETTINGS = WsSettings(max_message_bytes=2**17, max_queue=4, write_limit=65536,
                      ping_interval=20, ping_timeout=20, open_timeout=5, close_timeout=1)
_TCP_NOTSENT_LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", 25)

Handler = Callable[[ServerConnection], Awaitable[None]]


@pytest.fixture(params=["websockets", "picows"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@contextlib.asynccontextmanager
async def server(handler: Handler, **options: object) -> AsyncIterator[str]:
    """A websockets server on loopback speaking the link's subprotocol; yields its URL."""
    options = {"close_timeout": 0.5, **options}  # stalled handlers: quick teardown
    async with serve(handler, "127.0.0.1", 0, subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                     compression=None, **options) as srv:  # type: ignore[arg-type]
        yield f"ws://127.0.0.1:{srv.sockets[0].getsockname()[1]}/"


@contextlib.asynccontextmanager
async def connected(backend: str, handler: Handler, settings: WsSettings = SETTINGS,
                    **options: object) -> AsyncIterator[LinkConnection]:
    async with server(handler, **options) as url:
        conn = await opener(backend)(url, None, SUBPROTOCOL, settings)  # type: ignore[arg-type]
        try:
            yield conn
        finally:
            await conn.close()


async def recv_close(conn: LinkConnection, timeout: float = 5) -> Closed:
    """The ``Closed`` that ``recv`` raises within ``timeout`` (fails if it returns)."""
    with pytest.raises(Closed) as caught:
        await asyncio.wait_for(conn.recv(), timeout)
    return caught.value


def raw_socket(conn: LinkConnection) -> socket.socket:
    """The TCP socket under either backend (test-only peek)."""
    if isinstance(conn, PicowsConnection):
        transport = conn._transport
        assert transport is not None
        return transport.underlying_transport.get_extra_info("socket")  # type: ignore[no-any-return]
    return conn._conn.transport.get_extra_info("socket")  # type: ignore[attr-defined,no-any-return]


def transport_of(conn: LinkConnection) -> asyncio.Transport:
    if isinstance(conn, PicowsConnection):
        assert conn._transport is not None
        return conn._transport.underlying_transport
    return conn._conn.transport  # type: ignore[attr-defined,no-any-return]


async def test_text_and_binary_round_trip_with_socket_tuning(backend: str) -> None:
    """Echo of both kinds; the link socket gets ``TCP_NOTSENT_LOWAT`` and ``SO_RCVBUF``."""
    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    settings = replace(SETTINGS, receive_buffer=131072)
    async with connected(backend, echo, settings) as conn:
        await conn.send_text("héllo")
        assert await conn.recv() == "héllo"
        await conn.send_binary(b"\x00\xff" * 1000)
        assert await conn.recv() == b"\x00\xff" * 1000
        assert conn.writable()
        conn.send_binary_nowait(b"now")
        assert await conn.recv() == b"now"
        sock = raw_socket(conn)
        assert sock.getsockopt(socket.IPPROTO_TCP, _TCP_NOTSENT_LOWAT) == NOTSENT_LOWAT
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 2 * 131072
        rtt = conn.path_min_rtt()  # the kernel's figure for this socket, after traffic
        assert rtt is not None and 0 < rtt < 0.05


async def test_fragmented_messages_are_reassembled(backend: str) -> None:
    async def fragments(ws: ServerConnection) -> None:
        await ws.send([b"ab", b"cd", b"ef"])
        await ws.send(["tex", "t ✓"])
        await ws.wait_closed()

    async with connected(backend, fragments) as conn:
        assert await conn.recv() == b"abcdef"
        assert await conn.recv() == "text ✓"


@pytest.mark.parametrize("fragmented", [False, True])
async def test_oversize_message_closes_with_1009(backend: str, fragmented: bool) -> None:
    """Over ``max_message_bytes``, whole or in fragments: closed with 1009, never queued."""
    chunk = b"x" * 50_000

    async def big(ws: ServerConnection) -> None:
        await ws.send([chunk, chunk, chunk] if fragmented else chunk * 3)
        await ws.wait_closed()

    async with connected(backend, big) as conn:
        assert (await recv_close(conn)).code == 1009


async def test_invalid_utf8_text_closes_with_1007(backend: str) -> None:
    async def bad_text(ws: ServerConnection) -> None:
        await ws.send(b"\xff\xfe not utf-8", text=True)
        await ws.wait_closed()

    async with connected(backend, bad_text) as conn:
        assert (await recv_close(conn)).code == 1007


async def test_unread_messages_pause_reading_and_push_back(backend: str) -> None:
    """A gateway that does not read holds at most ``max_queue`` messages (plus what one
    socket read brought) and stops reading, so the cloud's sends stall."""
    sent = 0
    stalled = asyncio.Event()

    async def flood(ws: ServerConnection) -> None:
        nonlocal sent
        for _ in range(2000):
            try:
                await asyncio.wait_for(ws.send(b"m" * 16384), 1.0)
            except TimeoutError:
                stalled.set()
                break
            sent += 1
        await ws.wait_closed()

    async with connected(backend, flood, write_limit=65536) as conn:
        await asyncio.wait_for(stalled.wait(), 20)
        assert sent < 2000, "the server never felt back-pressure"
        if isinstance(conn, PicowsConnection):
            assert len(conn._messages) <= SETTINGS.max_queue + 256 * 1024 // 16384
            assert not transport_of(conn).is_reading()
        received = 0
        while received < sent:
            assert await asyncio.wait_for(conn.recv(), 5) == b"m" * 16384
            received += 1


async def test_send_binary_waits_while_the_peer_does_not_read(backend: str) -> None:
    """Back-pressure: ``send_binary`` stops returning once the write buffer is over
    ``write_limit``; ``writable()`` is false then; the buffer stays bounded."""
    paused = asyncio.Event()

    async def stalled(ws: ServerConnection) -> None:
        ws.transport.pause_reading()
        paused.set()
        await ws.wait_closed()

    async with connected(backend, stalled) as conn:
        await paused.wait()
        message = b"z" * 65536
        blocked = False
        for _ in range(400):
            try:
                await asyncio.wait_for(conn.send_binary(message), 0.5)
            except TimeoutError:
                blocked = True
                break
        assert blocked, "send_binary never waited"
        assert not conn.writable()
        assert transport_of(conn).get_write_buffer_size() <= SETTINGS.write_limit + len(message)
        # Closing with a full buffer toward a peer that does not read: bounded by
        # close_timeout on both backends (websockets alone would wait for the drain).
        started = time.monotonic()
        await conn.close()
        assert time.monotonic() - started < 2 * SETTINGS.close_timeout + 1.0
        assert transport_of(conn).is_closing()


@pytest.mark.parametrize(("status", "header", "expected"),
                         [(401, None, None), (403, None, None), (429, "7", 7.0),
                          (503, "soon", None)])
async def test_handshake_rejections_carry_status_and_retry_after(
        backend: str, status: int, header: str | None, expected: float | None) -> None:
    def reject(_conn: ServerConnection, _request: Request) -> Response:
        headers = Headers({"Retry-After": header} if header else {})
        return Response(status, "no", headers, b"")

    async def never(_ws: ServerConnection) -> None:
        raise AssertionError("upgrade should have been refused")

    async with server(never, process_request=reject) as url:
        with pytest.raises(HandshakeRejected) as caught:
            await opener(backend)(url, None, SUBPROTOCOL, SETTINGS)  # type: ignore[arg-type]
    assert (caught.value.status, caught.value.retry_after) == (status, expected)


async def test_missing_subprotocol_is_refused(backend: str) -> None:
    async def idle(ws: ServerConnection) -> None:
        await ws.wait_closed()

    async with serve(idle, "127.0.0.1", 0) as srv:
        url = f"ws://127.0.0.1:{srv.sockets[0].getsockname()[1]}/"
        with pytest.raises(ConnectFailed, match="subprotocol"):
            await opener(backend)(url, None, SUBPROTOCOL, SETTINGS)  # type: ignore[arg-type]


async def test_nothing_listening_is_a_retryable_connect_failure(backend: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectFailed) as caught:
        await opener(backend)(f"ws://127.0.0.1:{port}/", None, SUBPROTOCOL,  # type: ignore[arg-type]
                              SETTINGS)
    assert not caught.value.tls_verify


async def test_missed_pong_closes_with_keepalive_timeout(backend: str) -> None:
    """A peer that stops reading (so never answers pings) is declared dead after
    ``ping_timeout`` (1011, "keepalive ..."); the close handshake it will never answer
    costs at most ``close_timeout`` (websockets waits it out, picows aborts at once)."""
    async def deaf(ws: ServerConnection) -> None:
        ws.transport.pause_reading()
        await ws.wait_closed()

    settings = replace(SETTINGS, ping_interval=0.1, ping_timeout=0.2, close_timeout=1)
    async with connected(backend, deaf, settings, ping_interval=None) as conn:
        started = time.monotonic()
        closed = await recv_close(conn, timeout=10)
        assert closed.code == 1011 and "keepalive" in closed.reason
        assert time.monotonic() - started < settings.ping_timeout + settings.close_timeout + 1


async def test_close_is_bounded_by_close_timeout(backend: str) -> None:
    """A peer that never answers the close frame cannot hold ``close`` longer than
    ``close_timeout``."""
    async def deaf(ws: ServerConnection) -> None:
        ws.transport.pause_reading()
        await ws.wait_closed()

    async with server(deaf, ping_interval=None) as url:
        conn = await opener(backend)(url, None, SUBPROTOCOL, SETTINGS)  # type: ignore[arg-type]
        started = time.monotonic()
        await conn.close()
        assert time.monotonic() - started < 2 * SETTINGS.close_timeout + 1.0
        with pytest.raises(Closed):
            await conn.send_text("after close")


async def test_peer_close_reaches_recv_with_code_and_reason(backend: str) -> None:
    async def closer(ws: ServerConnection) -> None:
        await ws.send("last")
        await ws.close(4403, "revoked")

    async with connected(backend, closer) as conn:
        assert await conn.recv() == "last"
        closed = await recv_close(conn)
        assert (closed.code, closed.reason) == (4403, "revoked")
        assert not conn.writable()


def _importers(package: str) -> set[str]:
    """Source files under clgwd/ that import ``package`` (at any depth)."""
    root = Path(clgwd.__file__).parent
    found = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom)
                     and node.level == 0 else [])
            if any(n == package or n.startswith(package + ".") for n in names):
                found.add(str(path.relative_to(root)))
    return found


def test_each_websocket_library_is_imported_by_its_backend_only() -> None:
    """The link never depends on a library's API outside its one backend module."""
    assert _importers("websockets") == {"link/ws.py"}
    assert _importers("picows") == {"link/ws_picows.py"}


def test_auto_prefers_picows_and_falls_back_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    assert backends.resolve("auto") == "picows"
    assert backends.opener("auto") is ws_picows.open_connection
    assert backends.opener("websockets") is ws.open_connection
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "picows" else real_find_spec(name, *a))
    assert backends.resolve("auto") == "websockets"
    assert backends.opener("auto") is ws.open_connection


def test_explicit_picows_without_the_package_is_a_config_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "picows" else real_find_spec(name, *a))
    with pytest.raises(ConfigError) as caught:
        parse_config("cloud: {websocket_backend: picows}\n")
    assert "cloud.websocket_backend" in str(caught.value)
    assert "picows is not installed" in str(caught.value)
    assert parse_config("cloud: {websocket_backend: auto}\n").cloud.websocket_backend == "auto"
    with pytest.raises(ConfigError, match="websocket_backend"):
        parse_config("cloud: {websocket_backend: aiohttp}\n")


async def test_binary_sink_gets_messages_in_order_and_only_behind_an_empty_queue() -> None:
    """picows: binary messages go to the sink in the socket callback; one that arrives
    while others wait in the queue waits too, so order across kinds is kept."""
    steps = [asyncio.Event() for _ in range(3)]

    async def sender(ws: ServerConnection) -> None:
        await ws.send(b"first")
        await steps[0].wait()
        await ws.send("text")
        await ws.send(b"after text")
        await steps[1].wait()
        await ws.send(b"last")
        await steps[2].wait()
        await ws.send(b"boom")
        await ws.wait_closed()

    got: list[bytes] = []

    def sink(data: bytes) -> None:
        if data == b"boom":
            raise RuntimeError("endpoint bug")
        got.append(data)

    async with connected("picows", sender) as conn:
        assert isinstance(conn, BinarySinkConnection) and isinstance(conn, PicowsConnection)
        assert await conn.recv() == b"first"  # no sink yet: through the queue
        conn.set_binary_sink(sink)
        steps[0].set()
        async with asyncio.timeout(5):  # text always queues; binary waits behind it
            while len(conn._messages) < 2:
                await asyncio.sleep(0.01)
        assert await conn.recv() == "text"
        assert await conn.recv() == b"after text"
        assert got == []
        steps[1].set()
        async with asyncio.timeout(5):
            while got != [b"last"]:  # the queue is empty: straight to the sink
                await asyncio.sleep(0.01)
        steps[2].set()  # a sink that raises closes the connection with 1011
        assert (await recv_close(conn)).code == 1011


def test_websockets_backend_has_no_binary_sink() -> None:
    """websockets delivers through ``recv`` only: the link keeps its reader path."""
    assert not hasattr(ws.WsConnection, "set_binary_sink")
