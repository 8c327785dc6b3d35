"""The real gateway components (CloudLink + TunnelComponent) against the real refcloud.

Mutual TLS on loopback: enrollment delivers the tunnel authority's key and the gateway
id, the refcloud's admin API starts a tunnel and opens a Launch URL, a LAN page is
fetched through it, and the audit records reach the refcloud through the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from clgwd.commands import CommandRouter
from clgwd.component import ComponentStatus
from clgwd.config import ClgwdConfig, parse_config
from clgwd.daemon import connect_tunnel
from clgwd.link.component import CloudLink
from clgwd.link.connection import LinkState
from clgwd.link.enroll import EnrollmentFailed, _tunnel_authority_key
from clgwd.link.identity import IdentityFiles
from clgwd.protocol.sockopts import NOTSENT_LOWAT
from clgwd.refcloud.server import RefCloud
from clgwd.store import Store
from clgwd.tunnel.component import TunnelComponent
from tests.link.harness import FAST_LINK, enroll_gateway, wait_for

pytestmark = pytest.mark.usefixtures("link_backend")  # both websocket backends

_TCP_NOTSENT_LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", 25)

PAGE_TITLE = "MiVoice Business administration (test)"


@dataclass
class LanPage:
    port: int
    hosts: list[str]
    """``Host`` header of every request the LAN page served."""


@contextlib.asynccontextmanager
async def lan_page() -> AsyncIterator[LanPage]:
    """A LAN admin UI on 127.0.0.1 that records the Host header it was asked for."""
    hosts: list[str] = []

    async def index(request: web.Request) -> web.Response:
        hosts.append(request.headers.get("Host", ""))
        return web.Response(text=f"<title>{PAGE_TITLE}</title>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/", index)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield LanPage(runner.addresses[0][1], hosts)
    finally:
        await runner.cleanup()


def tunnel_gateway_config(tmp: Path, cloud: RefCloud, lan_port: int,
                          **tunnel: Any) -> ClgwdConfig:
    """No ``tunnel.gateway_id``/``authority_public_key``: enrollment provides them."""
    state = tmp / "gw-state"
    state.mkdir(parents=True, exist_ok=True)
    return parse_config(json.dumps({
        "state": {"dir": str(state)},
        "cloud": {**FAST_LINK, "url": cloud.url, "enrollment_ca_file": str(cloud.ca_file)},
        "tunnel": {"targets": [{"name": "lan-ui", "host": "127.0.0.1", "ports": [lan_port],
                                "allow_special": ["loopback"]}],
                   "tunnels": [{"name": "admin-ui", "target": "lan-ui"}], **tunnel},
    }))


@dataclass
class Gateway:
    store: Store
    tunnel: TunnelComponent
    link: CloudLink


@contextlib.asynccontextmanager
async def running_gateway(config: ClgwdConfig) -> AsyncIterator[Gateway]:
    """Store, TunnelComponent and CloudLink wired as the daemon wires them."""
    commands = CommandRouter()
    statuses: dict[str, ComponentStatus] = {}
    async with Store(config) as store:
        tunnel = TunnelComponent(config, store, commands)
        link = CloudLink(config, store, commands, lambda: statuses)
        connect_tunnel(link, tunnel)
        async with tunnel, link, asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(tunnel.run(), name="test.tunnel"),
                     tg.create_task(link.run(), name="test.link")]
            try:
                yield Gateway(store, tunnel, link)
            finally:
                for task in tasks:
                    task.cancel()


class Admin:
    """The refcloud admin API over HTTPS with the admin token."""

    def __init__(self, cloud: RefCloud, http: aiohttp.ClientSession) -> None:
        self.cloud = cloud
        self.http = http
        self.ssl = ssl.create_default_context(cafile=str(cloud.ca_file))

    async def post(self, path: str, body: dict[str, Any] | None = None
                   ) -> tuple[int, dict[str, Any]]:
        async with self.http.post(
                f"{self.cloud.url}{path}", json=body or {}, ssl=self.ssl,
                headers={"Authorization": f"Bearer {self.cloud.admin_token}"}) as resp:
            return resp.status, await resp.json()


async def _audit_types(cloud: RefCloud, gid: str) -> list[str]:
    rows = await cloud.store.fetchall(
        "SELECT payload FROM records WHERE gateway_id = ? AND kind = 'audit' ORDER BY seq",
        (gid,))
    return [json.loads(r["payload"])["type"] for r in rows]


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url) as resp:
        return resp.status, await resp.text()


async def test_enrollment_delivers_tunnel_identity(tmp_path: Path) -> None:
    """The enrollment answer carries the authority key; the verifier uses it and the
    enrolled id, unless the tunnel config names its own (config wins)."""
    async with RefCloud(tmp_path / "cloud") as cloud, lan_page() as lan:
        config = tunnel_gateway_config(tmp_path, cloud, lan.port)
        await enroll_gateway(config, cloud)
        enrollment = await asyncio.to_thread(IdentityFiles(config.state.dir).load)
        assert enrollment is not None
        assert enrollment.tunnel_authority_key == cloud.tunnels.authority.public_key_b64
        async with Store(config) as store:
            tunnel = TunnelComponent(config, store, None)
            tunnel.set_enrolled_identity(enrollment.gateway_id,
                                         enrollment.tunnel_authority_key)
            assert tunnel.identity() == (cloud.tunnels.authority.public_key_b64,
                                         enrollment.gateway_id)
            override = tunnel_gateway_config(
                tmp_path, cloud, lan.port, gateway_id="gw-from-config",
                authority_public_key="A" * 43 + "=")
            await tunnel.apply_config(override)
            assert tunnel.identity() == ("A" * 43 + "=", "gw-from-config")


async def test_authority_key_survives_refcloud_restart(tmp_path: Path) -> None:
    """The refcloud keeps one tunnel authority, stored 0600 in its directory."""
    async with RefCloud(tmp_path / "cloud") as cloud:
        first = cloud.tunnels.authority.public_key_b64
    mode = (await asyncio.to_thread(cloud.tunnels.key_path.stat)).st_mode
    assert mode & 0o777 == 0o600
    async with RefCloud(tmp_path / "cloud") as cloud:
        assert cloud.tunnels.authority.public_key_b64 == first


@dataclass
class Setup:
    """An enrolled, connected gateway with the LAN page as tunnel ``admin-ui``."""

    cloud: RefCloud
    lan: LanPage
    http: aiohttp.ClientSession
    admin: Admin
    gw: Gateway
    gid: str

    async def launch(self, body: dict[str, Any] | None = None) -> str:
        status, answer = await self.admin.post(
            f"/api/gateways/{self.gid}/tunnels/admin-ui/launch", body)
        assert status == 200, answer
        assert answer["tunnels"][0]["status"] == "started"
        return str(answer["url"])


@contextlib.asynccontextmanager
async def online_gateway(tmp_path: Path, **tunnel: Any) -> AsyncIterator[Setup]:
    async with (RefCloud(tmp_path / "cloud") as cloud, lan_page() as lan,
                aiohttp.ClientSession() as http):
        config = tunnel_gateway_config(tmp_path, cloud, lan.port, **tunnel)
        await enroll_gateway(config, cloud)
        async with running_gateway(config) as gw:
            gid = gw.link.gateway_id or ""
            # Both ends: the cloud files the session on the hello, a moment before the
            # gateway reads the answer and calls itself online.
            await wait_for(lambda: gid in cloud.sessions and gw.link.state == LinkState.ONLINE,
                           what="gateway connected")
            yield Setup(cloud, lan, http, Admin(cloud, http), gw, gid)


async def test_launch_url_opens_lan_page_through_gateway(tmp_path: Path) -> None:
    """Start + Launch through the admin API, fetch the LAN page with its own Host
    header, audit arrives upstream, stop makes further requests fail with a reason."""
    async with online_gateway(tmp_path) as t:
        cloud, lan, http, gid = t.cloud, t.lan, t.http, t.gid
        url = await t.launch({"admin": "alice"})
        async with aiohttp.ClientSession() as browser:
            for _ in range(2):  # one kept-alive connection: one stream and ticket
                status, text = await _get(browser, url)
                assert status == 200
                assert PAGE_TITLE in text
        assert lan.hosts == [f"127.0.0.1:{lan.port}"] * 2  # Host rewritten on each

        async with http.get(f"{cloud.url}/gateways/{gid}", ssl=t.admin.ssl) as resp:
            view = await resp.text()
        assert "admin-ui" in view and url in view

        async def audited() -> bool:
            types = await _audit_types(cloud, gid)
            return types.count("stream_open") == 1 and types.count("stream_close") == 1
        await wait_for(audited, what="audit records at the refcloud")
        assert (await _audit_types(cloud, gid))[0] == "tunnel_start"

        status, answer = await t.admin.post(f"/api/gateways/{gid}/tunnels/admin-ui/stop")
        assert status == 200, answer
        assert answer["result"]["tunnels"][0]["status"] == "stopped"
        status, text = await _get(http, url)
        assert status == 502
        assert "tunnel refused" in text
        assert len(lan.hosts) == 2

        async def denial_audited() -> bool:
            types = await _audit_types(cloud, gid)
            return "tunnel_stop" in types and "denied" in types
        await wait_for(denial_audited, what="stop and denial audited upstream")


async def test_tunnel_frames_skip_the_reader_task_on_picows(tmp_path: Path,
                                                            link_backend: str) -> None:
    """With picows the link hands tunnel frames to the mux from the socket callback
    (``DirectBinaryEndpoint``); websockets keeps the reader path. Data flows either way."""
    async with online_gateway(tmp_path) as t:
        session = t.gw.link._current
        assert session is not None
        sink = getattr(session._conn, "_binary_sink", None)
        assert (sink is not None) == (link_backend == "picows")
        url = await t.launch({"admin": "alice"})
        status, text = await _get(t.http, url)
        assert status == 200 and PAGE_TITLE in text


async def test_refcloud_tunes_the_gateway_link_socket(tmp_path: Path) -> None:
    """The cloud end of the link keeps its unsent queue small too (``clgwd.protocol.sockopts``)."""
    async with online_gateway(tmp_path) as t:
        sock = t.cloud.sessions[t.gid].ws.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, _TCP_NOTSENT_LOWAT) == NOTSENT_LOWAT
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


async def test_both_tunnel_ends_see_the_link_round_trip_time(tmp_path: Path) -> None:
    """The shared window needs the kernel's RTT of the link socket on both ends: the
    gateway's link session (either backend) and the refcloud's aiohttp end pass it on."""
    async with online_gateway(tmp_path) as t:
        url = await t.launch({"admin": "alice"})
        status, _ = await _get(t.http, url)  # traffic both ways: the kernel has samples
        assert status == 200
        gateway_session = t.gw.tunnel.mux.session
        cloud_session = t.cloud.tunnels.muxes[t.gid].session
        assert gateway_session is not None and cloud_session is not None
        for session in (gateway_session, cloud_session):
            probe = session._path_min_rtt
            assert probe is not None
            rtt = probe()
            assert rtt is not None and 0 < rtt < 0.05, rtt


async def test_launch_in_byte_mode_forwards_requests_untouched(tmp_path: Path) -> None:
    """``mode: bytes`` (HTTPS targets): Host is not rewritten and a keep-alive client
    sends both requests over one connection, so one stream and one ticket; switching
    the mode replaces the Launch proxy; an unknown mode is a 400 naming the choices."""
    async with online_gateway(tmp_path) as t:
        status, answer = await t.admin.post(
            f"/api/gateways/{t.gid}/tunnels/admin-ui/launch", {"mode": "gopher"})
        assert status == 400
        assert "mode one of http, bytes" in answer["message"]
        url = await t.launch({"mode": "bytes"})
        launch = t.cloud.tunnels.launches[(t.gid, "admin-ui")]
        assert launch.as_json()["mode"] == "bytes"
        proxy_host = url.removeprefix("http://").rstrip("/")
        for _ in range(2):
            status, text = await _get(t.http, url)
            assert status == 200 and PAGE_TITLE in text
        assert t.lan.hosts == [proxy_host] * 2

        async def one_stream() -> bool:
            return (await _audit_types(t.cloud, t.gid)).count("stream_open") == 1
        await wait_for(one_stream, what="one stream_open audited")

        http_url = await t.launch({"mode": "http"})
        assert http_url != url
        assert (await _get(t.http, http_url))[0] == 200
        assert t.lan.hosts[-1] == f"127.0.0.1:{t.lan.port}"


async def test_link_down_past_grace_closes_tunnels(tmp_path: Path) -> None:
    """The cloud gone longer than link_grace stops the tunnel (fail closed); after the
    link returns the Launch URL refuses until the tunnel is requested again."""
    async with online_gateway(tmp_path, link_grace=0.5) as t:
        url = await t.launch()
        assert (await _get(t.http, url))[0] == 200

        await t.cloud.stop()
        await wait_for(lambda: t.gw.tunnel.manager.list()[0]["status"] == "stopped",
                       what="tunnel stopped after the grace period")
        await t.cloud.start()
        await wait_for(lambda: t.gid in t.cloud.sessions
                       and t.gw.link.state == LinkState.ONLINE, what="gateway reconnected")
        status, text = await _get(t.http, url)
        assert status == 502
        assert "tunnel refused" in text

        assert await t.launch() == url  # the same Launch proxy, reused
        assert (await _get(t.http, url))[0] == 200


def test_malformed_tunnel_authority_key_fails_enrollment() -> None:
    """Absent is fine (tunnels then need the config); anything but a 32-byte key fails."""
    assert _tunnel_authority_key(None) == ""
    assert _tunnel_authority_key("A" * 43 + "=") == "A" * 43 + "="
    for bad in ("c2hvcnQ=", "not base64!", 42):
        with pytest.raises(EnrollmentFailed):
            _tunnel_authority_key(bad)


async def test_launch_survives_goaway_reconnect(tmp_path: Path) -> None:
    """After a goaway the mux is attached to the new socket; the same URL still works."""
    async with online_gateway(tmp_path) as t:
        url = await t.launch()
        old = t.cloud.sessions[t.gid]
        await old.goaway(0, "test")
        await wait_for(lambda: t.cloud.sessions.get(t.gid) not in (None, old),
                       what="new socket")
        for _ in range(3):
            assert (await _get(t.http, url))[0] == 200
        assert len(t.lan.hosts) == 3
        assert t.cloud.tunnels.scope.crashes == 0


async def test_launch_api_refuses_clearly(tmp_path: Path) -> None:
    """No token 401, bad input 400, unknown tunnel the gateway's error (502), a gateway
    that is not connected 409."""
    async with online_gateway(tmp_path) as t:
        base = f"{t.cloud.url}/api/gateways/{t.gid}/tunnels"
        async with t.http.post(f"{base}/admin-ui/launch", json={}, ssl=t.admin.ssl) as resp:
            assert resp.status == 401
        status, _ = await t.admin.post(f"/api/gateways/{t.gid}/tunnels/admin-ui/launch",
                                       {"port": 70000})
        assert status == 400
        status, _ = await t.admin.post(f"/api/gateways/{t.gid}/tunnels/admin-ui/launch",
                                       {"admin": "x" * 500})
        assert status == 400
        status, answer = await t.admin.post(f"/api/gateways/{t.gid}/tunnels/nope/launch")
        assert status == 502
        assert "nope" in answer["error"]["message"]
        status, _ = await t.admin.post("/api/gateways/gw-unknown/tunnels/admin-ui/start")
        assert status == 409
        assert t.cloud.tunnels.launches == {}
