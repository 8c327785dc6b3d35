"""The refcloud "Launch" URL: a LAN web UI opened through the gateway."""

from __future__ import annotations

import asyncio
import socket

import aiohttp

from clgwd.protocol.wire import OpenRequest
from clgwd.refcloud.httprewrite import MAX_REQUEST_HEAD, rewrite_request_head
from clgwd.refcloud.tunnels import host_header

from .conftest import HarnessFactory


async def test_launch_url_serves_lan_web_ui(harness: HarnessFactory) -> None:
    """An HTTP client on the cloud side gets the LAN admin page through the tunnel."""
    h = await harness(mode="http")
    await h.start()
    async with h.proxy(http_errors=True) as proxy, aiohttp.ClientSession() as client:
        for _ in range(3):  # each request is a new connection, stream and ticket
            async with client.get(proxy.url, headers={"Connection": "close"}) as resp:
                assert resp.status == 200
                assert "MiVB admin" in await resp.text()
    assert len(await h.wait_audit("stream_open", 3)) == 3
    assert len({r["ticket_id"] for r in await h.audit("stream_open")}) == 3


async def test_launch_url_explains_refusal(harness: HarnessFactory) -> None:
    """With the tunnel stopped the browser gets a 502 naming the reason, not a hang."""
    h = await harness(mode="http")
    async with h.proxy(http_errors=True) as proxy, aiohttp.ClientSession() as client, \
            client.get(proxy.url) as resp:
        assert resp.status == 502
        assert "tunnel-stopped" in await resp.text()
    assert h.echo.connections == 0


async def test_bytes_read_before_open_are_forwarded(harness: HarnessFactory) -> None:
    """Bytes an event loop delivered before the stream took over are sent, not dropped
    (uvloop did deliver some to the placeholder protocol; iperf3 hung on that)."""
    h = await harness()
    await h.start()
    loop = asyncio.get_running_loop()
    mine, theirs = socket.socketpair()
    transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, mine)
    request = OpenRequest("echo", "127.0.0.1", h.echo.port, h.ticket(), 65536)
    await h.cloud.open(transport, request, early=[b"early ", b"bytes"])
    reader, writer = await asyncio.open_connection(sock=theirs)
    assert await reader.readexactly(11) == b"early bytes"
    writer.close()


async def test_http_mode_rewrites_host_of_a_split_request_head(harness: HarnessFactory) -> None:
    """The LAN target sees its own Host; other headers (``Connection`` too) and the
    body pass unchanged, even when the head arrives in pieces."""
    h = await harness()
    await h.start()
    async with h.proxy(rewrite_host=True) as proxy:
        reader, writer = await asyncio.open_connection(*proxy.address)
        writer.write(b"POST /x HTTP/1.1\r\nHost: 127.0.0.1:1\r\nConnec")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"tion: keep-alive\r\nContent-Length: 4\r\n\r\nbody")
        writer.write_eof()
        echoed = await reader.read()
        writer.close()
    assert echoed == (b"POST /x HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: keep-alive\r\n"
                      b"Content-Length: 4\r\n\r\nbody" % h.echo.port)


async def test_http_mode_refuses_an_endless_head(harness: HarnessFactory) -> None:
    """A request head beyond the limit gets 431 and never reaches the gateway."""
    h = await harness()
    await h.start()
    async with h.proxy(rewrite_host=True) as proxy:
        reader, writer = await asyncio.open_connection(*proxy.address)
        writer.write(b"GET / HTTP/1.1\r\nX: " + b"a" * (MAX_REQUEST_HEAD + 10))
        answer = await reader.read()
        writer.close()
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert h.echo.connections == 0


def test_upgrade_requests_keep_their_connection_header() -> None:
    """A websocket upgrade keeps ``Connection: Upgrade``; only Host changes."""
    head = (b"GET /ws HTTP/1.1\r\nHost: proxy\r\nConnection: Upgrade\r\n"
            b"Upgrade: websocket\r\n\r\n")
    assert rewrite_request_head(head, host_header("mivb.example", 80)) == (
        b"GET /ws HTTP/1.1\r\nHost: mivb.example\r\nConnection: Upgrade\r\n"
        b"Upgrade: websocket\r\n\r\n")
    assert host_header("2001:db8::1", 8443) == "[2001:db8::1]:8443"
