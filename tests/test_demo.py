"""``clgwd demo`` starts everything on localhost, prints URLs, stops on Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from clgwd.cli.demo import DEMO_UI_TITLE

pytestmark = pytest.mark.slow
ReadUntil = Callable[[str], Coroutine[Any, Any, str]]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def _demo(*args: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, ReadUntil]]:
    """``clgwd demo ARGS`` as a subprocess; ``read_until(marker)`` returns its output so
    far once the marker appeared; the process is killed if the test did not stop it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "clgwd", "demo", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    stdout = proc.stdout
    output = ""

    async def read_until(marker: str) -> str:
        nonlocal output
        try:
            async with asyncio.timeout(40):
                while marker not in output:
                    line = await stdout.readline()
                    assert line, f"demo ended early:\n{output}"
                    output += line.decode()
        except TimeoutError:
            raise AssertionError(f"no {marker!r} within 40 s:\n{output[-4000:]}") from None
        return output

    try:
        yield proc, read_until
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _stop(proc: asyncio.subprocess.Process) -> None:
    proc.send_signal(signal.SIGINT)
    rest, _ = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 0, rest.decode()


async def test_demo_serves_and_stops_cleanly() -> None:
    port = _free_port()
    async with _demo("--port", str(port)) as (proc, read_until):
        output = await read_until("ready:")
        assert f"http://127.0.0.1:{port}/api/v1/health" in output
        state_dir = re.search(r"State dir: (\S+)", output)
        assert state_dir is not None
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/api/v1/health") as resp:
                assert resp.status == 200
        await _stop(proc)
    from pathlib import Path

    assert not Path(state_dir.group(1)).exists(), "temporary state dir was left behind"


async def test_demo_launch_url_opens_lan_ui_through_the_tunnel() -> None:
    """The Launch URL shows the sample LAN admin UI through the gateway and the
    refcloud, with the UI's own Host header; the cloud view lists the tunnel."""
    async with _demo("--port", str(_free_port()), "--tls-port", str(_free_port())) as (
            proc, read_until):
        output = await read_until("Launch (")
        launch = re.search(r"Launch \(.*?\): (http://127\.0\.0\.1:\d+/)", output)
        lan = re.search(r"LAN UI: +http://127\.0\.0\.1:(\d+)/", output)
        view = re.search(r"cloud view: (http://\S+)", output)
        assert launch and lan and view, output
        async with aiohttp.ClientSession() as http:
            async with http.get(launch.group(1)) as resp:
                assert resp.status == 200
                page = await resp.text()
            async with http.get(view.group(1)) as resp:
                assert launch.group(1) in await resp.text()
        assert DEMO_UI_TITLE in page
        assert f"127.0.0.1:{lan.group(1)}" in page  # Host rewritten to the target's
        await _stop(proc)


async def test_demo_prints_a_working_snmpwalk_line() -> None:
    """The demo's SNMP line (address and community) answers net-snmp's snmpget."""
    import os
    import shutil

    if shutil.which("snmpget") is None:
        pytest.skip("snmpget is not installed")
    async with _demo("--port", str(_free_port()), "--tls-port", str(_free_port())) as (
            proc, read_until):
        output = await read_until("ready:")
        line = re.search(r"snmpwalk -v2c -c (\S+) (127\.0\.0\.1:\d+) ", output)
        assert line is not None, output
        get = await asyncio.create_subprocess_exec(
            "snmpget", "-v2c", "-c", line.group(1), "-On", line.group(2),
            "1.3.6.1.4.1.99999.1.1.1.1.0", stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "MIBS": ""})
        out, _ = await get.communicate()
        assert b"STRING:" in out
        await _stop(proc)


async def test_demo_reboot_restarts_only_its_daemon_and_the_setup_code_is_shown() -> None:
    """The banner shows the setup code itself and a setup-code command that runs as
    printed (absolute path); Reboot on the page restarts the demo's daemon (the host is
    untouched: the demo sets system.reboot_restarts_daemon, no reboot command runs) and
    the page answers again afterwards; a factory reset wipes only the gateway's state
    and the demo says how to enroll again."""
    import shlex

    port, tls_port = _free_port(), _free_port()
    async with _demo("--port", str(port), "--tls-port", str(tls_port)) as (proc, read_until):
        output = await read_until("Setup code for the page:")
        output = await read_until("setup-code -c")
        code = re.search(r"Setup code for the page: (\S+)", output)
        command = re.search(r"\(also: (.+ setup-code -c \S+)\)", output)
        assert code and command, output
        argv = shlex.split(command.group(1))
        assert Path(argv[0]).is_absolute()
        cli = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
        printed, _ = await cli.communicate()
        assert cli.returncode == 0 and code.group(1) in printed.decode()
        config = re.search(r"config: (\S+)\)", output)
        assert config is not None
        assert "reboot_restarts_daemon: true" in Path(config.group(1)).read_text()
        assert "update_command" not in Path(config.group(1)).read_text()
        base = f"https://127.0.0.1:{tls_port}"
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.post(f"{base}/api/v1/session/setup", ssl=False, json={
                    "setup_code": code.group(1), "password": "demo password 1234"}) as resp:
                assert resp.status == 201, await resp.text()
                csrf = (await resp.json())["csrf_token"]
            async with http.post(f"{base}/api/v1/system/reboot", ssl=False, json={},
                                 headers={"X-CSRF-Token": csrf}) as resp:
                assert resp.status == 202, await resp.text()
            output = await read_until("The demo's daemon restarted")
            assert "Reboot failed" not in output and "systemctl" not in output
            async with asyncio.timeout(20):
                while True:
                    try:
                        async with http.get(f"http://127.0.0.1:{port}/api/v1/health") as resp:
                            if resp.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.2)
            # A factory reset wipes the gateway's state only (config and cloud stay).
            async with http.post(f"{base}/api/v1/session/login", ssl=False,
                                 json={"password": "demo password 1234"}) as resp:
                assert resp.status == 200, await resp.text()
                csrf = (await resp.json())["csrf_token"]
            async with http.post(f"{base}/api/v1/system/factory-reset", ssl=False,
                                 json={"confirm": "revert"},
                                 headers={"X-CSRF-Token": csrf}) as resp:
                assert resp.status == 202, await resp.text()
            output = await read_until("not enrolled any more")
            assert Path(config.group(1)).exists()
            assert Path(config.group(1)).with_name("refcloud").is_dir()
        assert proc.returncode is None
        await _stop(proc)


def test_demo_config_keeps_an_all_digit_community_a_string(tmp_path: Path) -> None:
    """The demo's random SNMP community can come out all digits (``117300061657``);
    YAML would read that as a number and the strict config would refuse it."""
    from clgwd.cli.demo import demo_config_text
    from clgwd.config import parse_config

    text = demo_config_text(tmp_path, 8080, snmp=(16161, "117300061657"))
    community = parse_config(text).monitor.snmp.community
    assert community is not None and community.reveal() == "117300061657"
