"""`clgwd demo` shows the gateway enrolled and online in the refcloud view (issue 3 done-when)."""

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


async def test_demo_gateway_is_online_in_cloud_view() -> None:
    """The printed cloud view URL shows this gateway online with a status report."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "clgwd", "demo", "--port", str(_free_port()),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    output = ""
    try:
        async with asyncio.timeout(30):
            while "Cloud link online" not in output:
                output += (await proc.stdout.readline()).decode()
        match = re.search(r"cloud view: (http://127\.0\.0\.1:\d+/gateways/(gw-[0-9a-f]{32}))",
                          output)
        assert match is not None, output
        url, gateway_id = match.groups()
        async with aiohttp.ClientSession(trust_env=False) as http:
            for _ in range(100):
                async with http.get(url) as resp:
                    page = await resp.text()
                if "Reported" in page:
                    break
                await asyncio.sleep(0.1)
        assert resp.status == 200
        assert gateway_id in page and "<span class='on'>online</span>" in page
        assert "Reported" in page, "no status record arrived"
        proc.send_signal(signal.SIGINT)
        rest, _ = await asyncio.wait_for(proc.communicate(), 15)
        assert proc.returncode == 0, rest.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
