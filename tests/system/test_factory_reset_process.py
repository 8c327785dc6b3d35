"""Factory reset end to end: the real daemon process, configured, reset, restarted."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from clgwd.cli.setup_code_info import read_setup_info
from clgwd.errors import EXIT_RESTART
from clgwd.store.db import DB_FILENAME
from tests.daemon.proc import DaemonProcess, run_cli, write_config

PASSWORD = "correct horse battery"
PBX_PASSWORD = "pbx-secret-4412"
SITE_NAME = "Ballad Industries Reset Test"


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False),
                                     cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def _base(daemon: DaemonProcess) -> str:
    line = await daemon.wait_for_line("HTTPS listening on https://127.0.0.1:", 30)
    await daemon.wait_for_line("ready:", 30)
    return str(re.search(r"https://127\.0\.0\.1:\d+", line)[0])  # type: ignore[index]


async def _json(client: aiohttp.ClientSession, method: str, url: str, csrf: str = "",
                body: Any = None, status: int = 200) -> Any:
    async with client.request(method, url, json=body, headers={"X-CSRF-Token": csrf}) as resp:
        assert resp.status == status, await resp.text()
        return await resp.json()


async def _configure(client: aiohttp.ClientSession, base: str, state: Path) -> str:
    """First-visit setup, site info and PBX credentials through the page's API."""
    info = await asyncio.to_thread(read_setup_info, state)
    assert info.code is not None and not info.password_set
    answer = await _json(client, "POST", f"{base}/api/v1/session/setup",
                         body={"setup_code": info.code, "password": PASSWORD}, status=201)
    csrf = str(answer["csrf_token"])
    await _json(client, "PUT", f"{base}/api/v1/site", csrf, {
        "site_name": SITE_NAME, "address": "2301 Express Avenue", "city": "Ottawa",
        "country": "Canada", "province": "Ontario", "postal_code": "K0A 2Z0"})
    await _json(client, "PUT", f"{base}/api/v1/pbx", csrf, {
        "type": "freepbx_mysql", "name": "Main PBX", "address": "127.0.0.1", "port": 3306,
        "username": "clgwd", "password": PBX_PASSWORD})
    return csrf


def _secret_rows(state: Path) -> list[str]:
    with sqlite3.connect(f"file:{state / DB_FILENAME}?mode=ro", uri=True) as db:
        return [str(row[0]) for row in db.execute("SELECT ciphertext FROM secrets")]


def _raw_state(state: Path) -> bytes:
    """Every byte of every file in the state dir (database, WAL, keys, certificates)."""
    return b"".join(p.read_bytes() for p in sorted(state.rglob("*")) if p.is_file())


def _events(state: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(f"file:{state / DB_FILENAME}?mode=ro", uri=True) as db:
        return [(str(a), str(s)) for a, s in db.execute("SELECT actor, subject FROM events")]


async def test_factory_reset_erases_everything_and_restarts_unconfigured(
        tmp_path: Path, client: aiohttp.ClientSession) -> None:
    config = write_config(tmp_path, extra="system: {action_delay: 0.3}\n")
    state = tmp_path / "state"
    daemon = await DaemonProcess.start(config)
    try:
        base = await _base(daemon)
        csrf = await _configure(client, base, state)
        old_secrets = await asyncio.to_thread(_secret_rows, state)
        assert len(old_secrets) >= 3  # device key, admin password hash, PBX password
        old_code = (await asyncio.to_thread(read_setup_info, state)).code
        await _json(client, "POST", f"{base}/api/v1/system/factory-reset", csrf,
                    {"confirm": "revert"}, status=202)
        assert await daemon.wait(20) == EXIT_RESTART
    finally:
        await daemon.kill()

    daemon = await DaemonProcess.start(config)  # what systemd's Restart=on-failure does
    try:
        base = await _base(daemon)
        await daemon.wait_for_line("Factory reset completed")
        session = await _json(client, "GET", f"{base}/api/v1/session")
        assert session == {"setup_required": True, "authenticated": False}
        info = await asyncio.to_thread(read_setup_info, state)
        assert info.code is not None and info.code != old_code and not info.password_set
        raw = await asyncio.to_thread(_raw_state, state)
        for token in old_secrets:
            assert token.encode() not in raw
        assert SITE_NAME.encode() not in raw and PBX_PASSWORD.encode() not in raw
        events = await asyncio.to_thread(_events, state)
        assert ("local:web:admin", "factory reset completed") in events
    finally:
        await daemon.kill()


async def test_cli_factory_reset_over_the_control_socket(tmp_path: Path) -> None:
    """``clgwd factory-reset`` needs --confirm revert; with it the daemon restarts."""
    config = write_config(tmp_path, extra="system: {action_delay: 0.3}\n")
    daemon = await DaemonProcess.start(config)
    try:
        await daemon.wait_for_line("ready:", 30)
        code, _, err = await run_cli("factory-reset", "--config", str(config),
                                     "--confirm", "yes")
        assert code == 1 and "confirm: must be 'revert'" in err
        code, out, _ = await run_cli("factory-reset", "--config", str(config),
                                     "--confirm", "revert")
        assert code == 0 and "factory reset committed" in out
        assert await daemon.wait(20) == EXIT_RESTART
        assert (tmp_path / "state" / "factory-reset.pending").exists()
    finally:
        await daemon.kill()
