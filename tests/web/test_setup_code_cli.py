"""`clgwd setup-code` prints the same code the running gateway accepts."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp

from tests.daemon.proc import DaemonProcess, run_cli, write_config


async def test_cli_prints_the_code_the_page_accepts(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    code, out, err = await run_cli("setup-code", "--config", str(config))
    assert code == 69 and "start clgwd once" in err
    proc = await DaemonProcess.start(config)
    try:
        line = await proc.wait_for_line("Setup code for the first visit:")
        logged = line.rsplit(" ", 1)[-1]
        await proc.wait_for_line("HTTPS certificate SHA-256 fingerprint")
        url_line = await proc.wait_for_line("Onboarding page: https://127.0.0.1:")
        base = url_line.rsplit(" ", 1)[-1].rstrip("/")
        code, out, err = await run_cli("setup-code", "--config", str(config))
        assert code == 0, err
        assert f"Setup code: {logged}" in out
        assert "fingerprint" in out
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as s:
            async with s.post(f"{base}/api/v1/session/setup",
                              json={"setup_code": logged, "password": "0123456789ab"}) as r:
                assert r.status == 201
        code, out, err = await run_cli("setup-code", "--config", str(config))
        assert "already used" in out
    finally:
        proc.send(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
