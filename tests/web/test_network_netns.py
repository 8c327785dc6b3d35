"""The Ethernet port API end to end: the real daemon manages a port inside a namespace
(``netns_gateway`` in conftest), so kernel changes never reach the host."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.net.conftest import kernel_v4
from tests.web.conftest import Gateway, setup_admin

pytestmark = [pytest.mark.netns]


async def _req(client: aiohttp.ClientSession, gw: Gateway, csrf: str, method: str,
               path: str, body: Any = None) -> tuple[int, Any]:
    async with client.request(method, gw.base + path, json=body,
                              headers={"X-CSRF-Token": csrf}) as resp:
        return resp.status, await resp.json()


async def test_apply_and_confirm_through_the_api(netns_gateway: tuple[Gateway, str],
                                                 client: aiohttp.ClientSession) -> None:
    """The page's flow: read the port, apply a new address (kernel changes, token back),
    a wrong token is refused, the right one confirms."""
    gw, ns = netns_gateway
    csrf = await setup_admin(client, gw)
    status, body = await _req(client, gw, csrf, "GET", "/api/v1/network")
    assert status == 200 and body["ports"] == [
        {"name": "eth0", "mode": "static", "address": "198.18.0.30",
         "netmask": "255.255.255.0", "gateway": "198.18.0.1", "dns": ["198.18.0.53"]}]
    new = {"name": "eth0", "mode": "static", "address": "198.18.0.40",
           "netmask": "255.255.255.0", "gateway": "198.18.0.1", "dns": ["198.18.0.53"]}
    status, body = await _req(client, gw, csrf, "POST", "/api/v1/network/apply",
                              {"ports": [{**new, "name": "eth1"}]})
    assert status == 422 and "'eth1' is not a port this gateway manages" in body["message"]
    status, body = await _req(client, gw, csrf, "POST", "/api/v1/network/apply",
                              {"ports": [new]})
    assert status == 200, body
    assert body["new_addresses"] == ["198.18.0.40"] and body["rollback_after_s"] >= 85
    assert kernel_v4(ns) == ["198.18.0.40/24"]
    status, got = await _req(client, gw, csrf, "GET", "/api/v1/network")
    assert got["awaiting_confirmation"]["actor"] == "local:web:admin"
    status, err = await _req(client, gw, csrf, "POST", "/api/v1/network/confirm",
                             {"token": "not-the-token"})
    assert (status, err["code"]) == (409, "wrong_confirm_token")
    status, ok = await _req(client, gw, csrf, "POST", "/api/v1/network/confirm",
                            {"token": body["confirm_token"]})
    assert (status, ok) == (200, {"confirmed": True})
    status, got = await _req(client, gw, csrf, "GET", "/api/v1/network")
    assert got["awaiting_confirmation"] is None and got["ports"] == [new]
    assert kernel_v4(ns) == ["198.18.0.40/24"]
