"""Minimal websocket carrier for the bench: the role the cloud link and refcloud play.

Binary messages in, ``on_binary`` called in order from one reader task; ``send_binary``
is ``websocket.send`` (waits under back-pressure). Production code never imports
websockets outside the link; the bench may.
"""

from __future__ import annotations

from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import ServerConnection

from clgwd.channel import BinaryEndpoint, LinkDown

WS_OPTIONS: dict[str, Any] = {
    "compression": None,        # payload is opaque bytes; deflate would only cost CPU
    "max_size": 2**17,          # one frame (64 KiB + header) per message, with headroom
    "max_queue": 64,            # bounded receive queue -> TCP back-pressure when full
    "write_limit": 2**18,       # 256 KiB transport buffer before send() waits
    "ping_interval": 20,
}


class WsChannel:
    """``BinaryChannel`` over one websockets connection."""

    def __init__(self, ws: ClientConnection | ServerConnection) -> None:
        self.ws = ws

    async def send_binary(self, data: bytes) -> None:
        try:
            await self.ws.send(data)
        except websockets.ConnectionClosed as err:
            raise LinkDown(str(err)) from None


async def pump(ws: ClientConnection | ServerConnection, endpoint: BinaryEndpoint) -> None:
    """Run one connection: link up, feed every binary message, link down."""
    await endpoint.on_link_up(WsChannel(ws))
    try:
        async for message in ws:
            if isinstance(message, bytes):
                await endpoint.on_binary(message)
    except websockets.ConnectionClosed:
        pass
    finally:
        await endpoint.on_link_down()
