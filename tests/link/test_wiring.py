"""The link inside the real daemon, and the `clgwd enroll` command line."""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

from clgwd.config import parse_config
from clgwd.daemon import Daemon
from clgwd.errors import EXIT_CONFIG
from clgwd.link.address import load_saved
from clgwd.store import Store
from tests.link.harness import refcloud, wait_for


async def test_daemon_runs_link_after_store_and_it_goes_online(tmp_path: Path) -> None:
    """build_components puts the link after the store; `clgwd enroll` enrolls through
    the running daemon (a refusal is the cloud's reason) and the link connects at once."""
    async with refcloud(tmp_path / "cloud") as cloud:
        state = tmp_path / "state"
        config_path = tmp_path / "clgwd.yaml"
        config_path.write_text(
            f"state: {{dir: '{state}'}}\n"
            f"http: {{listen: [{{host: 127.0.0.1, port: {_free_port()}}}]}}\n"
            f"control: {{socket: '{tmp_path / 'control.sock'}'}}\n"
            f"cloud: {{url: '{cloud.url}', enrollment_ca_file: '{cloud.ca_file}'}}\n")
        config = parse_config(config_path.read_text())
        daemon = Daemon(config, config_path)
        task = asyncio.create_task(daemon.run())
        try:
            await wait_for(lambda: "link" in daemon.statuses()
                           and "not enrolled" in daemon.statuses()["link"].message)
            names = [c.name for c in daemon.components]
            assert names.index("store") < names.index("link")
            token_file = tmp_path / "token"
            token_file.write_text("not-the-token\n")
            rc, out, err = await _enroll_cli(config_path, token_file)
            assert rc == 1 and b"unknown Account ID or token" in err  # the daemon's answer
            token_file.write_text(await cloud.create_token("acme") + "\n")
            rc, out, err = await _enroll_cli(config_path, token_file)
            assert rc == 0, err.decode()
            assert b"enrolled in account acme through the running daemon" in out
            # Enrolled through the daemon: its link connects at once, no file polling.
            await wait_for(lambda: daemon.statuses()["link"].message.startswith("online"),
                           limit=1)
        finally:
            daemon.request_stop("test done")
            assert await task == 0


async def test_enroll_cli_reports_rejection(tmp_path: Path) -> None:
    """A wrong token makes `clgwd enroll` exit 1 with the cloud's reason."""
    async with refcloud(tmp_path / "cloud") as cloud:
        config_path = tmp_path / "clgwd.yaml"
        config_path.write_text(
            f"state: {{dir: '{tmp_path / 'state'}'}}\n"
            f"cloud: {{url: '{cloud.url}', enrollment_ca_file: '{cloud.ca_file}'}}\n")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "clgwd", "enroll", "--config", str(config_path),
            "--account", "acme", "--token-file", "-", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate(b"not-the-token\n")
        assert proc.returncode == 1
        assert b"HTTP 401" in err and b"unknown Account ID or token" in err


async def test_enroll_cli_names_a_missing_ca_file(tmp_path: Path) -> None:
    """A cloud.enrollment_ca_file that does not exist is an error naming the file, exit
    1, not a traceback."""
    missing = tmp_path / "no-such-ca.pem"
    config_path = tmp_path / "clgwd.yaml"
    config_path.write_text(
        f"state: {{dir: '{tmp_path / 'state'}'}}\n"
        f"control: {{socket: '{tmp_path / 'control.sock'}'}}\n"
        f"cloud: {{url: 'https://127.0.0.1:9', enrollment_ca_file: '{missing}'}}\n")
    token_file = tmp_path / "token"
    token_file.write_text("a-token\n")
    rc, _, err = await _enroll_cli(config_path, token_file)
    assert rc == 1
    assert f"cannot read {missing}".encode() in err and b"Traceback" not in err


async def _enroll_cli(config_path: Path, token_file: Path,
                      *extra: str) -> tuple[int | None, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "clgwd", "enroll", "--config", str(config_path),
        "--account", "acme", "--token-file", str(token_file), *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode, out, err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_enroll_cli_takes_the_cloud_address_and_ca_and_saves_them(
        tmp_path: Path) -> None:
    """No daemon, no cloud.url in the file: `clgwd enroll --cloud-url URL --cloud-ca FILE`
    enrolls with them and saves them (the daemon starts with that address); a CA file
    that is no certificate is refused before anything is sent."""
    async with refcloud(tmp_path / "cloud") as cloud:
        state = tmp_path / "state"
        config_path = tmp_path / "clgwd.yaml"
        config_path.write_text(f"state: {{dir: '{state}'}}\n"
                               f"control: {{socket: '{tmp_path / 'control.sock'}'}}\n")
        token_file = tmp_path / "token"
        token_file.write_text(await cloud.create_token("acme") + "\n")
        not_a_ca = tmp_path / "key.pem"
        not_a_ca.write_text("-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n")
        rc, _, err = await _enroll_cli(config_path, token_file, "--cloud-url", cloud.url,
                                       "--cloud-ca", str(not_a_ca))
        assert rc == EXIT_CONFIG and b"key.pem: is not a certificate" in err, err
        rc, out, err = await _enroll_cli(config_path, token_file, "--cloud-url", cloud.url,
                                         "--cloud-ca", str(cloud.ca_file))
        assert rc == 0, err.decode()
        assert f"in account acme with {cloud.url}".encode() in out
        async with Store(parse_config(config_path.read_text())) as store:
            saved = await load_saved(store)
        assert saved is not None and saved.url == cloud.url and saved.actor == "local:cli"
        assert saved.ca_pem is not None and "BEGIN CERTIFICATE" in saved.ca_pem
