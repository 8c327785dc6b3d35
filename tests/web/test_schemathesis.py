"""Schemathesis against /api/v1/openapi.json: no 5xx, and every 4xx has a message.

It runs the ``st`` CLI as a subprocess against the daemon in this process, logged in
(session cookie and CSRF header), so it reaches the handlers behind the auth guard.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp
import pytest

from clgwd.web.security import SESSION_COOKIE
from tests.web.conftest import Gateway, setup_admin

pytestmark = [pytest.mark.timeout(150)]
ST = Path(sys.executable).with_name("st")


async def test_api_fuzz_no_5xx_and_clear_4xx(update_gateway: Gateway,
                                             client: aiohttp.ClientSession,
                                             tmp_path: Path) -> None:
    """The fuzzer reaches Reboot and Factory reset too, so the daemon's system commands
    only write files under tmp_path (``update_gateway``): never ``systemctl reboot``."""
    gateway = update_gateway
    if not ST.exists():
        pytest.skip("schemathesis is not installed")
    csrf = await setup_admin(client, gateway)
    cookie = next(c for c in client.cookie_jar if c.key == SESSION_COOKIE)
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.web.st_hooks",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = await asyncio.create_subprocess_exec(
        str(ST), "run", f"{gateway.base}/api/v1/openapi.json", "--url", gateway.base,
        "--tls-verify", "false", "-H", f"Cookie: {SESSION_COOKIE}={cookie.value}",
        "-H", f"X-CSRF-Token: {csrf}", "-c", "no_server_error,clear_error_message",
        # Logging out would end the session the run depends on.
        "--exclude-path", "/api/v1/session/logout",
        "--max-examples", "15", "--seed", "1", "--workers", "1",
        "--phases", "examples,coverage,fuzzing", "--no-color",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
        cwd=tmp_path)
    out, _ = await asyncio.wait_for(proc.communicate(), 140)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-6000:]
    tested = await _operations(client, gateway) - 1  # all but the excluded logout
    assert f"Tested: {tested}" in text and " passed" in text, text[-3000:]


async def _operations(client: aiohttp.ClientSession, gateway: Gateway) -> int:
    """How many operations the OpenAPI document names, so a route that the fuzzer
    silently skipped (or a spec that lost one) fails the test."""
    async with client.get(f"{gateway.base}/api/v1/openapi.json", ssl=False) as resp:
        spec = await resp.json()
    methods = {"get", "put", "post", "delete", "patch"}
    return sum(1 for ops in spec["paths"].values() for method in ops if method in methods)
