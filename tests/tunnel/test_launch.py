"""The refcloud "Launch" URL: a LAN web UI opened through the gateway."""

from __future__ import annotations

import aiohttp

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
