"""A real third-party protocol through the tunnel: iperf3 both directions (peers)."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from tests.conftest import require_program

from .conftest import HarnessFactory


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _wait_listening(port: int) -> None:
    """Poll /proc for the listener instead of connecting (a probe would be an iperf3 test)."""
    hex_port = f":{port:04X} "
    for _ in range(200):
        with open("/proc/net/tcp", encoding="ascii") as tcp:
            if any(hex_port in line and line.split()[3] == "0A" for line in tcp):
                return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"iperf3 did not listen on {port}")


@pytest.mark.peers
async def test_iperf3_through_tunnel(harness: HarnessFactory) -> None:
    """iperf3's control and data connections (both directions) work through streams."""
    iperf3 = require_program("iperf3")
    port = _free_port()
    server = await asyncio.create_subprocess_exec(
        iperf3, "-s", "-B", "127.0.0.1", "-p", str(port),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        await _wait_listening(port)
        h = await harness(target_port=port)
        await h.start()
        async with h.proxy() as proxy:
            for reverse in ([], ["-R"]):
                client = await asyncio.create_subprocess_exec(
                    iperf3, "-c", "127.0.0.1", "-p", str(proxy.address[1]), "-t", "1", "-J",
                    *reverse, stdout=asyncio.subprocess.PIPE)
                out, _ = await client.communicate()
                result = json.loads(out)
                assert "error" not in result, result.get("error")
                assert result["end"]["sum_received"]["bytes"] > 1_000_000
    finally:
        if server.returncode is None:
            server.terminate()
            await server.wait()
