"""``clgwd demo`` starts everything on localhost, prints URLs, stops on Ctrl-C."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import sys

import aiohttp
import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_demo_serves_and_stops_cleanly() -> None:
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "clgwd", "demo", "--port", str(port),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    output = ""
    try:
        async with asyncio.timeout(30):
            while "ready:" not in output:
                output += (await proc.stdout.readline()).decode()
        assert f"http://127.0.0.1:{port}/api/v1/health" in output
        state_dir = re.search(r"State dir: (\S+)", output)
        assert state_dir is not None
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/api/v1/health") as resp:
                assert resp.status == 200
        proc.send_signal(signal.SIGINT)
        rest, _ = await asyncio.wait_for(proc.communicate(), 15)
        assert proc.returncode == 0, rest.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    from pathlib import Path

    assert not Path(state_dir.group(1)).exists(), "temporary state dir was left behind"
