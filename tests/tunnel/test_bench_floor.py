"""The tunnel bench's "picows floor" baseline carries bytes faithfully.

Its throughput is printed as the ceiling of clgwd's data path on picows, so it must
move every byte, in order, both ways, with half-close, or that figure means nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket

import pytest

pytest.importorskip("picows")

from bench import picows_floor


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echo until EOF, then half-close back (so the floor must carry FIN both ways)."""
    while data := await reader.read(1 << 16):
        writer.write(data)
        await writer.drain()
    writer.write_eof()
    await writer.drain()
    writer.close()


async def _send_all(writer: asyncio.StreamWriter, payload: bytes) -> None:
    for offset in range(0, len(payload), 100_000):
        writer.write(payload[offset:offset + 100_000])
        await writer.drain()
    writer.write_eof()


async def test_floor_echoes_every_byte_both_ways_and_half_closes(
        capsys: pytest.CaptureFixture[str]) -> None:
    target = await asyncio.start_server(_echo, "127.0.0.1", 0)
    target_port = target.sockets[0].getsockname()[1]
    ws_port, front_port = _free_port(), _free_port()
    payload = os.urandom(3_000_001)  # not a multiple of the 64 KiB frame
    async with target, asyncio.TaskGroup() as group:
        cloud = group.create_task(picows_floor.cloud_main(ws_port, {str(front_port): target_port}))
        await asyncio.sleep(0.2)
        gateway = group.create_task(picows_floor.gateway_main(f"ws://127.0.0.1:{ws_port}/"))
        async with asyncio.timeout(10):
            while "READY" not in capsys.readouterr().out:
                await asyncio.sleep(0.05)
            clients = [await asyncio.open_connection("127.0.0.1", front_port) for _ in range(3)]
            for _, writer in clients:
                group.create_task(_send_all(writer, payload))
            echoed = [await reader.read() for reader, _ in clients]  # read() = until EOF
        for _, writer in clients:
            writer.close()
        cloud.cancel()
        gateway.cancel()
    expected = hashlib.sha256(payload).hexdigest()
    assert [hashlib.sha256(data).hexdigest() for data in echoed] == [expected] * 3
