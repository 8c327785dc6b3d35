"""`clgwd refcloud` as a process: starts, prints what a technician needs, serves, stops."""

from __future__ import annotations

import asyncio
import signal
import socket
import ssl
import sys
from pathlib import Path

import aiohttp


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_refcloud_command_serves_view_and_stops_on_sigint(tmp_path: Path) -> None:
    """The banner names URL, Account ID, token and admin token; SIGINT stops it cleanly."""
    port, view_port = _free_port(), _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "clgwd", "refcloud", "--dir", str(tmp_path / "rc"),
        "--port", str(port), "--view-port", str(view_port), "--account", "acme",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        banner = b""
        async with asyncio.timeout(20):
            while b"Press Ctrl-C" not in banner:
                banner += await proc.stdout.readline()
        text = banner.decode()
        assert f"https://127.0.0.1:{port}/" in text and "Account ID: acme" in text
        assert "enrollment token:" in text and "admin API token:" in text
        assert "tunnel authority public key" in text and "/tunnels/<tunnel>/launch" in text
        ctx = ssl.create_default_context(cafile=str(tmp_path / "rc" / "ca" / "ca.crt"))
        async with aiohttp.ClientSession(trust_env=False) as http:
            async with http.get(f"https://127.0.0.1:{port}/", ssl=ctx) as resp:
                assert resp.status == 200
                assert "clgwd reference cloud" in await resp.text()
            async with http.get(f"http://127.0.0.1:{view_port}/api/gateways") as resp:
                assert resp.status == 200 and await resp.json() == []
    finally:
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(20):
            await proc.wait()
    assert proc.returncode == 0
