"""Run in a peer namespace by test_preflight: TCP listeners and an HTTP CONNECT proxy.

Usage: python tcp_peers.py BIND_IP PROXY_PORT TCP_PORT...
Prints "ready" once every socket listens; runs until killed.
"""

from __future__ import annotations

import asyncio
import sys


async def _accept_and_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def _proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Minimal CONNECT proxy: 200 if the target accepts a TCP connection, else 502."""
    request = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    _, target, _ = request.split(" ", 2)
    host, _, port = target.rpartition(":")
    try:
        _, upstream = await asyncio.open_connection(host, int(port))
        upstream.close()
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
    except OSError:
        writer.write(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
    await writer.drain()
    writer.close()


async def main(bind: str, proxy_port: int, ports: list[int]) -> None:
    servers = [await asyncio.start_server(_proxy, bind, proxy_port)]
    servers += [await asyncio.start_server(_accept_and_close, bind, p) for p in ports]
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), [int(p) for p in sys.argv[3:]]))
