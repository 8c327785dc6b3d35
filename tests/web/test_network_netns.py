"""The Ethernet port API end to end: the real daemon manages a port inside a namespace.

``build_components`` runs unchanged except that its network component manages the
ports of a throw-away namespace (``NetworkComponent(netns=...)``, the tests-only seam
tests/net uses), so the kernel changes happen there and never on the host.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from blockbuster import BlockBuster

from clgwd.config import ClgwdConfig
from clgwd.daemon import Daemon
from clgwd.net.ports import NetworkComponent
from clgwd.store import Store
from tests.conftest import require_root
from tests.net.conftest import Lan, kernel_v4
from tests.web.conftest import Gateway, setup_admin, start_gateway

pytestmark = [pytest.mark.netns]

PORT = ("{name: eth0, mode: static, address: 198.18.0.30/24, gateway: 198.18.0.1, "
        "dns: [198.18.0.53]}")


@pytest.fixture
async def netns_gateway(make_config: Callable[..., ClgwdConfig], tmp_path: Path,
                        monkeypatch: pytest.MonkeyPatch,
                        blockbuster: BlockBuster) -> AsyncIterator[tuple[Gateway, str]]:
    """The daemon, its network component managing ``eth0`` of a fresh namespace."""
    require_root()
    for name in blockbuster.functions:  # pyroute2 hands the namespace's socket over
        blockbuster.functions[name].can_block_in("pyroute2/process.py",
                                                 {"communicate", "start", "stop"})
    lan = Lan.new_hub()
    try:
        ns = lan.add_ns()
        lan.attach(ns)

        def in_namespace(config: ClgwdConfig, store: Store) -> NetworkComponent:
            return NetworkComponent(config, store, netns=ns)

        monkeypatch.setattr("clgwd.daemon.NetworkComponent", in_namespace)
        # pyroute2's namespace helper is a forked child: it inherits asyncio's signal
        # wakeup fd, and the SIGTERM that ends it would reach this daemon as its own.
        monkeypatch.setattr(Daemon, "_install_signal_handlers", lambda self: None)
        monkeypatch.setattr(Daemon, "_remove_signal_handlers", lambda self: None)
        gw, task = await start_gateway(make_config(
            f"network: {{resolv_conf: '{tmp_path / 'resolv.conf'}', ports: [{PORT}]}}\n"))
        try:
            yield gw, ns
        finally:
            gw.daemon.request_stop("test over")
            await task
    finally:
        lan.remove()


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
