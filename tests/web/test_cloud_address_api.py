"""The cloud address typed on the Cloud step (``POST /api/v1/cloud/enroll`` with
``cloud_url`` and ``cloud_ca_pem``), against the real reference cloud on loopback."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from clgwd.commands import CommandContext
from clgwd.config import ClgwdConfig
from clgwd.config.cloud import ADDRESS_SETTING
from clgwd.protocol import rpc as p
from clgwd.protocol.rpc import RpcFailed
from clgwd.refcloud.server import RefCloud
from clgwd.web.messages import HUMAN
from tests.link.harness import other_ca_pem
from tests.web.conftest import FAST_LINK, PASSWORD, Gateway, setup_admin, start_gateway

ACCOUNT = "1234567891"


@contextlib.asynccontextmanager
async def running(config: ClgwdConfig, cloud: RefCloud) -> AsyncIterator[Gateway]:
    """The whole daemon with ``config``, stopped (and waited for) on the way out."""
    gw, task = await start_gateway(config)
    gw.cloud = cloud
    try:
        yield gw
    finally:
        gw.daemon.request_stop("test over")
        await asyncio.wait_for(task, 15)


def bare_config(make_config: Callable[..., ClgwdConfig]) -> ClgwdConfig:
    """A stock appliance: the config file sets no cloud.url (nor a CA file)."""
    return make_config(f"cloud: {{{FAST_LINK}}}\n")


@pytest.fixture
async def refcloud(tmp_path: Path) -> AsyncIterator[RefCloud]:
    async with RefCloud(tmp_path / "refcloud") as cloud:
        yield cloud


@pytest.fixture
async def bare_gateway(make_config: Callable[..., ClgwdConfig],
                       refcloud: RefCloud) -> AsyncIterator[Gateway]:
    """A gateway whose file sets no cloud.url, a reference cloud on loopback for the
    technician to type its address."""
    async with running(bare_config(make_config), refcloud) as gw:
        yield gw


async def _req(client: aiohttp.ClientSession, gw: Gateway, csrf: str, method: str,
               path: str, body: Any = None) -> tuple[int, Any]:
    async with client.request(method, gw.base + path, json=body,
                              headers={"X-CSRF-Token": csrf}) as resp:
        return resp.status, await resp.json()


async def _wait_connected(client: aiohttp.ClientSession, gw: Gateway, csrf: str) -> dict[
        str, Any]:
    body: dict[str, Any] = {}
    async with asyncio.timeout(10):
        while body.get("link") != "connected":
            _, body = await _req(client, gw, csrf, "GET", "/api/v1/cloud")
            if body.get("link") != "connected":
                await asyncio.sleep(0.05)
    return body


async def _enroll_body(gw: Gateway, **extra: Any) -> dict[str, Any]:
    assert gw.cloud is not None
    return {"account_id": ACCOUNT, "token": await gw.cloud.create_token(ACCOUNT), **extra}


async def _saved(gw: Gateway) -> Any:
    return await gw.store.settings.get(ADDRESS_SETTING)


async def _enroll_typed(client: aiohttp.ClientSession, gw: Gateway) -> str:
    """First visit, then enroll with the typed address and the cloud's CA; the CSRF."""
    assert gw.cloud is not None
    csrf = await setup_admin(client, gw)
    status, answer = await _req(client, gw, csrf, "POST", "/api/v1/cloud/enroll",
                                await _enroll_body(gw, cloud_url=gw.cloud.url,
                                                   cloud_ca_pem=gw.cloud.ca.cert_pem))
    assert status == 200, answer
    return csrf


async def _login(client: aiohttp.ClientSession, gw: Gateway) -> str:
    async with client.post(f"{gw.base}/api/v1/session/login",
                           json={"password": PASSWORD}) as resp:
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["csrf_token"])


async def test_a_gateway_without_cloud_url_enrolls_with_the_typed_address_and_ca(
        refcloud: RefCloud, client: aiohttp.ClientSession,
        make_config: Callable[..., ClgwdConfig]) -> None:
    """No cloud.url in the file: GET says so; enrolling with cloud_url and the cloud's CA
    PEM connects, reports the address saved on the page, and after a daemon restart
    the link comes back online with the saved address and identity, no typing."""
    config = bare_config(make_config)
    async with running(config, refcloud) as gw:
        csrf = await setup_admin(client, gw)
        status, body = await _req(client, gw, csrf, "GET", "/api/v1/cloud")
        assert status == 200
        assert (body["cloud_url"], body["cloud_url_source"], body["cloud_ca_saved"]) == (
            None, None, False)
        ca_pem = refcloud.ca.cert_pem
        status, body = await _req(client, gw, csrf, "POST", "/api/v1/cloud/enroll",
                                  await _enroll_body(gw, cloud_url=refcloud.url + "/",
                                                     cloud_ca_pem=ca_pem))
        assert status == 200, body
        assert body["enrolled"] is True
        body = await _wait_connected(client, gw, csrf)
        assert (body["cloud_url"], body["cloud_url_source"], body["cloud_url_set_by"],
                body["cloud_ca_saved"]) == (refcloud.url, "page", "local:web:admin", True)
        assert "BEGIN CERTIFICATE" not in str(body)
        saved = await _saved(gw)
        assert saved["url"] == refcloud.url and "BEGIN CERTIFICATE" in saved["ca_pem"]
    async with running(config, refcloud) as gw:
        csrf = await _login(client, gw)
        body = await _wait_connected(client, gw, csrf)
        assert (body["cloud_url"], body["cloud_url_source"]) == (refcloud.url, "page")


async def test_each_bad_address_or_ca_is_refused_with_its_sentence_and_nothing_saved(
        bare_gateway: Gateway, client: aiohttp.ClientSession) -> None:
    """http://, no host, a user and password, a path or query, an over-long address; a
    PEM that is no certificate, a damaged one, an over-long one: each a 422 with its
    code, the reason and the technician's sentence; nothing is sent or saved."""
    gw = bare_gateway
    assert gw.cloud is not None
    csrf = await setup_admin(client, gw)
    good_ca = gw.cloud.ca.cert_pem
    long_ca = (good_ca + "\n") * (40 * 1024 // len(good_ca) + 1)
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"cloud_url": gw.cloud.url.replace("https://", "http://")}, "invalid_cloud_url",
         "not http://"),
        ({"cloud_url": "https://"}, "invalid_cloud_url", "with a host name"),
        ({"cloud_url": "https://tech:s3cret@cloud.example.com"}, "invalid_cloud_url",
         "must not contain a user name or password"),
        ({"cloud_url": "https://cloud.example.com/v1/enroll"}, "invalid_cloud_url",
         "without a path"),
        ({"cloud_url": "https://cloud.example.com/?site=1"}, "invalid_cloud_url",
         "without a path"),
        ({"cloud_url": "https://" + "a" * 600 + ".example.com"}, "invalid_cloud_url",
         "at most 512 characters"),
        ({"cloud_url": gw.cloud.url, "cloud_ca_pem": "-----BEGIN PRIVATE KEY-----\nMIIE"
          "\n-----END PRIVATE KEY-----"}, "invalid_cloud_ca", "is not a certificate"),
        ({"cloud_url": gw.cloud.url, "cloud_ca_pem": "-----BEGIN CERTIFICATE-----\nnot "
          "base64 at all\n-----END CERTIFICATE-----"}, "invalid_cloud_ca", "damaged"),
        ({"cloud_url": gw.cloud.url, "cloud_ca_pem": long_ca}, "invalid_cloud_ca",
         "at most 32 KiB"),
    ]
    for extra, code, reason in cases:
        body = {"account_id": ACCOUNT, "token": "never-sent-token", **extra}
        status, answer = await _req(client, gw, csrf, "POST", "/api/v1/cloud/enroll", body)
        assert (status, answer["code"]) == (422, code), (extra, answer)
        assert reason in answer["message"], answer
        assert (answer["title"], answer["next"]) == HUMAN[code]
        assert "s3cret" not in str(answer)
    assert await _saved(gw) is None
    status, answer = await _req(client, gw, csrf, "GET", "/api/v1/cloud")
    assert (answer["cloud_url"], answer["enrolled"]) == (None, False)


async def test_a_failed_enrollment_saves_nothing_and_the_address_in_force_stays(
        cloud_gateway: Gateway, client: aiohttp.ClientSession) -> None:
    """On a gateway whose file sets the cloud: an address nobody answers at
    (127.0.0.1:1), a CA that did not sign the cloud's certificate, a wrong token: each
    fails with its code and sentence, nothing is saved and the file's address stays;
    enrolling with the prefilled file address then works as before and saves nothing."""
    gw = cloud_gateway
    assert gw.cloud is not None
    csrf = await setup_admin(client, gw)
    failures: list[tuple[dict[str, Any], int, str, str]] = [
        ({"cloud_url": "https://127.0.0.1:1"}, 502, "cloud_unreachable",
         "nothing answers at 127.0.0.1:1"),
        ({"cloud_url": gw.cloud.url, "cloud_ca_pem": other_ca_pem()}, 502,
         "cloud_untrusted", "check the cloud CA certificate"),
        ({"cloud_url": gw.cloud.url, "token": "wrong-token-1234"}, 403,
         "enrollment_rejected", "refused the enrollment"),
    ]
    for extra, http_status, code, reason in failures:
        body = {**await _enroll_body(gw), **extra}
        status, answer = await _req(client, gw, csrf, "POST", "/api/v1/cloud/enroll", body)
        assert (status, answer["code"]) == (http_status, code), answer
        assert reason in answer["message"], answer
        assert (answer["title"], answer["next"]) == HUMAN[code]
        assert await _saved(gw) is None
        _, state = await _req(client, gw, csrf, "GET", "/api/v1/cloud")
        assert (state["cloud_url"], state["cloud_url_source"]) == (gw.cloud.url, "file")
    assert "CA certificate" in HUMAN["cloud_untrusted"][1]
    status, answer = await _req(client, gw, csrf, "POST", "/api/v1/cloud/enroll",
                                await _enroll_body(gw, cloud_url=gw.cloud.url))
    assert status == 200, answer
    state = await _wait_connected(client, gw, csrf)
    assert (state["cloud_url"], state["cloud_url_source"]) == (gw.cloud.url, "file")
    assert await _saved(gw) is None


async def test_the_cloud_can_neither_set_nor_forget_the_address(
        bare_gateway: Gateway, client: aiohttp.ClientSession) -> None:
    """Once enrolled with a typed address, the cloud's cloud.enroll (with another
    cloud_url) and cloud.address.forget are refused local_only; the address stays."""
    gw = bare_gateway
    assert gw.cloud is not None
    csrf = await _enroll_typed(client, gw)
    await _wait_connected(client, gw, csrf)
    gid = next(iter(gw.cloud.sessions))
    before = await _saved(gw)
    token = await gw.cloud.create_token("evil")
    for key, (method, params) in enumerate((
            ("cloud.enroll", {"account_id": "evil", "token": token,
                              "cloud_url": "https://198.51.100.7"}),
            ("cloud.address.forget", {}))):
        with pytest.raises(RpcFailed) as info:
            await gw.cloud.command(gid, method, params, idempotency_key=f"k-{key}")
        assert info.value.error.code == p.LOCAL_ONLY
    assert await _saved(gw) == before
    _, state = await _req(client, gw, csrf, "GET", "/api/v1/cloud")
    assert (state["cloud_url"], state["link"]) == (gw.cloud.url, "connected")


async def test_forgetting_the_saved_address_returns_to_the_config_file(
        bare_gateway: Gateway, client: aiohttp.ClientSession) -> None:
    """cloud.address.forget (clgwd config forget cloud.url) drops the saved address and
    CA: the file's (here none) is in force again and config.get reports it."""
    gw = bare_gateway
    assert gw.cloud is not None
    csrf = await _enroll_typed(client, gw)
    ctx = CommandContext("local:cli")
    report = await gw.daemon.commands.call("config.get", {"keys": ["cloud.url"]}, ctx)
    assert [(e["value"], e["source"]) for e in report["settings"]] == [(gw.cloud.url, "page")]
    answer = await gw.daemon.commands.call("cloud.address.forget", {}, ctx)
    assert answer["forgotten"] == ["cloud.url"]
    assert await _saved(gw) is None
    _, state = await _req(client, gw, csrf, "GET", "/api/v1/cloud")
    assert (state["cloud_url"], state["cloud_url_source"], state["enrolled"]) == (
        None, None, False)
    report = await gw.daemon.commands.call("config.get", {"keys": ["cloud.url"]}, ctx)
    assert [(e["value"], e["source"]) for e in report["settings"]] == [(None, "default")]
    again = await gw.daemon.commands.call("cloud.address.forget", {}, ctx)
    assert again["forgotten"] == []


async def test_settings_forget_also_forgets_the_saved_address(
        bare_gateway: Gateway, client: aiohttp.ClientSession) -> None:
    """settings.forget {"keys": ["cloud.url"]} (the settings owner's front door) asks
    the link to drop the saved address and reports cloud.url back at its default."""
    gw = bare_gateway
    await _enroll_typed(client, gw)
    answer = await gw.daemon.commands.call("settings.forget", {"keys": ["cloud.url"]},
                                           CommandContext("local:cli"))
    assert answer["forgotten"] == ["cloud.url"]
    assert [(e["key"], e["value"], e["source"]) for e in answer["settings"]] == [
        ("cloud.url", None, "default")]
    assert await _saved(gw) is None
