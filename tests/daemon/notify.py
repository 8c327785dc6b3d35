"""A real AF_UNIX datagram socket standing in for systemd's NOTIFY_SOCKET."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path


class NotifyListener:
    """Receives sd_notify datagrams and parses them into dicts, like systemd does."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[dict[str, str]] = []

    async def next(self, timeout: float = 10.0) -> dict[str, str]:
        loop = asyncio.get_running_loop()
        data = await asyncio.wait_for(loop.sock_recv(self.sock, 4096), timeout)
        message = dict(line.split("=", 1) for line in data.decode().splitlines())
        self.messages.append(message)
        return message

    async def wait_for(self, key: str, timeout: float = 10.0) -> dict[str, str]:
        async with asyncio.timeout(timeout):
            while True:
                message = await self.next(timeout)
                if key in message:
                    return message

    def close(self) -> None:
        self.sock.close()
