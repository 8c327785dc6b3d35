"""The cloud link, enrollment and renewal through a real HTTP CONNECT proxy (tinyproxy)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pytest

from clgwd.commands import CallerRefused, CommandContext
from clgwd.config import Secret
from clgwd.link.connection import LinkState
from clgwd.link.enroll import EnrollmentFailed
from clgwd.link.proxy import SECRET_PASSWORD, InvalidProxySetting
from tests.link.harness import Gateway, gateway_config, refcloud, running_gateway, wait_for
from tests.link.proxy_peer import tinyproxy

pytestmark = [pytest.mark.peers, pytest.mark.usefixtures("link_backend")]

WEB = CommandContext("local:web:admin")


def _proxy(port: int, **extra: Any) -> dict[str, Any]:
    return {"proxy": {"host": "127.0.0.1", "port": port, **extra},
            "proxy_from_environment": False}


async def _enroll(gw: Gateway, cloud: Any) -> None:
    token = await cloud.create_token("acme")
    await gw.link.enroll("acme", Secret(token))


async def test_link_enrollment_and_renewal_go_through_the_proxy(tmp_path: Path) -> None:
    """Enrollment (HTTPS) and the websocket both CONNECT through the proxy; the
    certificate is renewed over that proxied link and the link stays online."""
    async with refcloud(tmp_path / "cloud", cert_lifetime=dt.timedelta(seconds=6)) as cloud:
        with tinyproxy(tmp_path / "proxy") as proxy:
            config = gateway_config(tmp_path, cloud.url, cloud.ca_file, **_proxy(proxy.port))
            target = f"127.0.0.1:{cloud.port}"
            async with running_gateway(config) as gw:
                await _enroll(gw, cloud)
                await gw.online()
                assert proxy.connects().count(target) == 2  # enrollment + the link
                cert_file = config.state.dir / "cloud" / "device.crt"
                before = cert_file.read_text()
                await wait_for(lambda: cert_file.read_text() != before, limit=10,
                               what="renewed certificate")
                assert gw.link.state == LinkState.ONLINE
            assert all(c == target for c in proxy.connects())


async def test_a_proxy_that_refuses_connect_is_named_in_the_error(tmp_path: Path) -> None:
    """A proxy answering 403 to CONNECT: enrollment fails and the link stays offline,
    both saying which proxy refused which host and what to ask for."""
    async with refcloud(tmp_path / "cloud") as cloud:
        with tinyproxy(tmp_path / "proxy", connect_ports=[443]) as proxy:
            config = gateway_config(tmp_path, cloud.url, cloud.ca_file, **_proxy(proxy.port))
            async with running_gateway(config) as gw:
                with pytest.raises(EnrollmentFailed) as caught:
                    await _enroll(gw, cloud)
    message = caught.value.message
    assert f"the proxy 127.0.0.1:{proxy.port} refused to connect to 127.0.0.1:{cloud.port}" \
        in message
    assert "HTTP 403" in message and "CONNECT" in message


async def test_link_reports_a_proxy_refusing_connect(tmp_path: Path) -> None:
    """An enrolled gateway behind a proxy that refuses CONNECT stays offline with the
    proxy's refusal as the reason (not a generic connection error)."""
    async with refcloud(tmp_path / "cloud") as cloud:
        plain = gateway_config(tmp_path, cloud.url, cloud.ca_file)
        async with running_gateway(plain) as gw:
            await _enroll(gw, cloud)
        with tinyproxy(tmp_path / "proxy", connect_ports=[443]) as proxy:
            config = gateway_config(tmp_path, cloud.url, cloud.ca_file, **_proxy(proxy.port))
            async with running_gateway(config) as gw:
                await wait_for(lambda: gw.link.state == LinkState.BACKOFF, what="backoff")
                assert "refused to connect" in gw.link.tracker.current.message
                assert f"127.0.0.1:{proxy.port}" in gw.link.tracker.current.message


async def test_proxy_authentication(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A proxy that needs basic auth: no credentials and a wrong password each get a
    clear error naming the proxy; the right password connects; no log holds a password."""
    caplog.set_level(logging.DEBUG)
    auth = ("gateway", "R1ght-pass")
    async with refcloud(tmp_path / "cloud") as cloud:
        with tinyproxy(tmp_path / "proxy", auth=auth) as proxy:
            none = gateway_config(tmp_path, cloud.url, cloud.ca_file, **_proxy(proxy.port))
            async with running_gateway(none) as gw:
                with pytest.raises(EnrollmentFailed, match="requires a user name and password"):
                    await _enroll(gw, cloud)
            wrong = gateway_config(tmp_path, cloud.url, cloud.ca_file, **_proxy(
                proxy.port, username="gateway", password="Wr0ng-pass"))
            async with running_gateway(wrong) as gw:
                with pytest.raises(EnrollmentFailed) as caught:
                    await _enroll(gw, cloud)
            assert (f"the proxy 127.0.0.1:{proxy.port} did not accept the user name "
                    "'gateway'") in caught.value.message
            right = gateway_config(tmp_path, cloud.url, cloud.ca_file, **_proxy(
                proxy.port, username="gateway", password="R1ght-pass"))
            async with running_gateway(right) as gw:
                await _enroll(gw, cloud)
                await gw.online()
            async with running_gateway(wrong) as gw:  # enrolled now: the link's error
                await wait_for(lambda: gw.link.state == LinkState.BACKOFF, what="backoff")
                assert "did not accept the user name" in gw.link.tracker.current.message
    assert "R1ght-pass" not in caplog.text and "Wr0ng-pass" not in caplog.text


async def test_environment_proxy_and_no_proxy(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a configured proxy, HTTPS_PROXY is used; NO_PROXY naming the cloud host
    makes the link dial directly (the proxy never sees a CONNECT)."""
    async with refcloud(tmp_path / "cloud") as cloud:
        with tinyproxy(tmp_path / "proxy") as proxy:
            monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{proxy.port}")
            monkeypatch.delenv("HTTPS_PROXY", raising=False)
            monkeypatch.delenv("NO_PROXY", raising=False)
            monkeypatch.setenv("no_proxy", "localhost,.example.com")
            config = gateway_config(tmp_path, cloud.url, cloud.ca_file)
            async with running_gateway(config) as gw:
                await _enroll(gw, cloud)
                await gw.online()
            assert len(proxy.connects()) == 2
            monkeypatch.setenv("no_proxy", "localhost,127.0.0.0/8")
            async with running_gateway(config) as gw:
                await gw.online()
            assert len(proxy.connects()) == 2


async def test_page_proxy_setting_overrides_and_keeps_the_password_encrypted(
        tmp_path: Path) -> None:
    """``cloud.proxy.set`` from the page: the link uses it at once over the file's
    setting; the password is in the secret box (not in plain text), never answered back,
    and the cloud may not change the proxy."""
    auth = ("gateway", "Pag3-secret")
    async with refcloud(tmp_path / "cloud") as cloud:
        with tinyproxy(tmp_path / "proxy", auth=auth) as proxy:
            config = gateway_config(tmp_path, cloud.url, cloud.ca_file,
                                    **_proxy(proxy.port + 1 if proxy.port < 65535 else 1))
            async with running_gateway(config) as gw:
                answer = await gw.commands.call("cloud.proxy.set", {
                    "mode": "manual", "host": "127.0.0.1", "port": proxy.port,
                    "username": "gateway", "password": "Pag3-secret"}, WEB)
                assert answer["password_set"] is True and "Pag3-secret" not in str(answer)
                assert answer["effective"]["source"] == "page"
                await _enroll(gw, cloud)
                await gw.online()
                row = await gw.store.db.fetchone(
                    "SELECT ciphertext FROM secrets WHERE name = ?", (SECRET_PASSWORD,))
                assert row is not None and "Pag3-secret" not in row["ciphertext"]
                with pytest.raises(CallerRefused):
                    await gw.commands.call("cloud.proxy.set", {"mode": "none"},
                                           CommandContext("cloud"))
                with pytest.raises(InvalidProxySetting, match="host"):
                    await gw.commands.call("cloud.proxy.set", {"mode": "manual"}, WEB)
                await gw.commands.call("cloud.proxy.set", {"mode": "default"}, WEB)
                assert not await gw.store.secrets.is_set(SECRET_PASSWORD)
            assert proxy.connects()


async def test_unreachable_proxy_is_named(tmp_path: Path) -> None:
    """A proxy port nobody listens on: the link says it cannot reach that proxy."""
    async with refcloud(tmp_path / "cloud") as cloud:
        plain = gateway_config(tmp_path, cloud.url, cloud.ca_file)
        async with running_gateway(plain) as gw:
            await _enroll(gw, cloud)
        with tinyproxy(tmp_path / "proxy") as proxy:
            dead = proxy.port
        await asyncio.sleep(0.1)
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file, **_proxy(dead))
        async with running_gateway(config) as gw:
            await wait_for(lambda: gw.link.state == LinkState.BACKOFF, what="backoff")
            assert f"cannot reach the proxy 127.0.0.1:{dead}" in \
                gw.link.tracker.current.message
