"""The reference cloud's own rules: enrollment checks, websocket auth, view and admin API."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from clgwd.config import Secret
from clgwd.link.enroll import EnrollmentFailed, EnrollmentRejected, enroll
from clgwd.link.identity import IdentityFiles
from clgwd.refcloud.server import RefCloud
from tests.link.harness import (
    Gateway,
    enroll_gateway,
    gateway_config,
    refcloud,
    running_gateway,
    wait_for,
)


async def _http(cloud: RefCloud, method: str, path: str, *, body: Any = None,
                token: str | None = None, cert: IdentityFiles | None = None
                ) -> tuple[int, Any]:
    ctx = ssl.create_default_context(cafile=str(cloud.ca_file))
    if cert is not None:
        ctx.load_cert_chain(str(cert.cert), str(cert.key))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (aiohttp.ClientSession(trust_env=False) as http,
                http.request(method, cloud.url + path, json=body, ssl=ctx,
                             headers=headers) as resp):
        text = await resp.text()
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text


async def test_enrollment_rejects_wrong_used_and_malformed(tmp_path: Path) -> None:
    """Wrong token -> 401, second use of a one-time token -> 403, bad CSR -> 400."""
    async with refcloud(tmp_path / "cloud") as cloud:
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file)
        with pytest.raises(EnrollmentRejected, match="401"):
            await enroll(config.state.dir, cloud.url, "acme", Secret("wrong-token"),
                         cloud.ca_file)
        token = await cloud.create_token("acme")
        await enroll(config.state.dir, cloud.url, "acme", Secret(token), cloud.ca_file)
        with pytest.raises(EnrollmentRejected, match="403"):
            await enroll(config.state.dir, cloud.url, "acme", Secret(token), cloud.ca_file)
        status, body = await _http(cloud, "POST", "/v1/enroll", body={
            "account_id": "acme", "token": await cloud.create_token("acme"),
            "gateway_id": "gw-" + "0" * 32, "csr": "not a csr"})
        assert status == 400 and "CSR" in body["message"]


async def test_enrollment_needs_the_trusted_ca(tmp_path: Path) -> None:
    """Enrollment verifies the cloud's certificate; the system store does not know it."""
    async with refcloud(tmp_path / "cloud") as cloud:
        config = gateway_config(tmp_path, cloud.url, None)
        with pytest.raises(EnrollmentFailed, match="verify"):
            await enroll(config.state.dir, cloud.url, "acme",
                         Secret(await cloud.create_token("acme")), None)


async def test_websocket_needs_client_certificate(tmp_path: Path) -> None:
    """Without a client certificate the gateway endpoint answers 401."""
    async with refcloud(tmp_path / "cloud") as cloud:
        status, _ = await _http(cloud, "GET", "/v1/gateway")
        assert status == 401


async def test_admin_api_needs_token_and_view_escapes_html(tmp_path: Path) -> None:
    """POST routes need the admin token; user data is HTML-escaped in the view and
    non-ASCII names show as typed (Zoë, not Zo\\u00eb)."""
    async with refcloud(tmp_path / "cloud") as cloud:
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file)
        await enroll_gateway(config, cloud)
        async with running_gateway(config) as gw:
            await gw.online()
            gid = gw.link.gateway_id or ""
            await gw.enqueue("user.change", {"op": "create", "source_id": "s",
                                             "source_key": "<script>alert(1)</script>",
                                             "fingerprint": "f",
                                             "user": {"n": "<b>", "first": "Zoë"},
                                             "changed": []})
            status, _ = await _http(cloud, "POST", f"/api/gateways/{gid}/commands",
                                    body={"method": "status.report"})
            assert status == 401
            status, body = await _http(cloud, "POST", f"/api/gateways/{gid}/commands",
                                       body={"method": "status.report"},
                                       token=cloud.admin_token)
            assert status == 200 and "components" in body["result"]
            await wait_for(lambda: _drained(gw), what="outbox drained")
            status, page = await _http(cloud, "GET", f"/gateways/{gid}")
            assert status == 200
            assert "<script>alert(1)" not in page and "&lt;script&gt;" in page
            assert "Zoë" in page and "\\u00eb" not in page  # UTF-8, not JSON escapes
            status, index = await _http(cloud, "GET", "/")
            assert gid in index and "online" in index


async def test_command_to_offline_gateway_is_409(tmp_path: Path) -> None:
    """The API says clearly when the gateway is not connected."""
    async with refcloud(tmp_path / "cloud") as cloud:
        status, body = await _http(cloud, "POST", "/api/gateways/gw-x/commands",
                                   body={"method": "status.report"}, token=cloud.admin_token)
        assert status == 409 and "not connected" in body["message"]


async def _drained(gw: Gateway) -> bool:
    return await gw.store.outbox.depth() == 0
