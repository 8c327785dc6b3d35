"""Trace calls through the web API on the real sip part: start, 409, stop, download."""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

import aiohttp
import pytest

from clgwd.store import EventFilter
from tests.conftest import require_program, require_root
from tests.web.conftest import Gateway, setup_admin

pytestmark = [pytest.mark.peers, pytest.mark.timeout(60)]


async def _req(client: aiohttp.ClientSession, gw: Gateway, csrf: str, method: str,
               path: str, body: Any = None) -> tuple[int, Any, aiohttp.typedefs.LooseHeaders]:
    async with client.request(method, gw.base + path, json=body,
                              headers={"X-CSRF-Token": csrf}) as resp:
        ctype = resp.headers.get("Content-Type", "")
        data = await resp.json() if "json" in ctype else await resp.read()
        return resp.status, data, resp.headers


async def test_trace_start_status_stop_and_download(gateway: Gateway,
                                                    client: aiohttp.ClientSession) -> None:
    """202 with the running state, 409 for a second trace and for the running file, stop,
    then the pcap downloads (auth required, recorded); names outside the list are 404."""
    require_root()
    require_program("tcpdump")
    csrf = await setup_admin(client, gateway)
    status, body, _ = await _req(client, gateway, csrf, "POST", "/api/v1/trace",
                                 {"duration_minutes": 2})
    assert status == 202 and body["running"] is True, body
    current = body["current"]
    name = f"trace-{current['id']}-any.pcap"
    status, body, _ = await _req(client, gateway, csrf, "POST", "/api/v1/trace",
                                 {"duration_minutes": 1})
    assert (status, body["code"]) == (409, "trace_running") and "until" in body["message"]
    status, body, _ = await _req(client, gateway, csrf, "GET",
                                 f"/api/v1/trace/download?file={name}")
    assert (status, body["code"]) == (409, "trace_running") and "still running" in body["message"]
    status, body, _ = await _req(client, gateway, csrf, "GET", "/api/v1/trace")
    assert status == 200 and body["current"]["id"] == current["id"]
    status, body, _ = await _req(client, gateway, csrf, "POST", "/api/v1/trace/stop", {})
    assert status == 200 and body["stopped"] is True and body["running"] is False
    assert body["captures"][0]["files"][0]["name"] == name
    status, data, headers = await _req(client, gateway, csrf, "GET",
                                       f"/api/v1/trace/download?file={name}")
    assert status == 200 and data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1")
    assert headers["Content-Type"] == "application/vnd.tcpdump.pcap"
    assert f'filename="{name}"' in headers["Content-Disposition"]
    for bad in ("../../etc/passwd", "trace-20260101T000000000Z-any.pcap", "x.json", ""):
        status, body, _ = await _req(client, gateway, csrf, "GET",
                                     f"/api/v1/trace/download?file={bad}")
        assert (status, body["code"]) == (404, "trace_file_not_found"), bad
        assert body["message"].startswith("file: ")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as anon:
        async with anon.get(f"{gateway.base}/api/v1/trace/download?file={name}") as resp:
            assert resp.status == 401
    events = await gateway.store.history.query(EventFilter(asset="Call trace"))
    assert [e.action.value for e in events] == ["Other", "Stop", "Start"]
    assert events[0].subject == f"downloaded {name}"


async def test_support_bundle_has_the_trace_metadata_not_the_capture(
        gateway: Gateway, client: aiohttp.ClientSession) -> None:
    require_root()
    require_program("tcpdump")
    csrf = await setup_admin(client, gateway)
    await _req(client, gateway, csrf, "POST", "/api/v1/trace", {"duration_minutes": 1})
    status, stopped, _ = await _req(client, gateway, csrf, "POST", "/api/v1/trace/stop", {})
    assert status == 200
    status, data, _ = await _req(client, gateway, csrf, "GET", "/api/v1/support-bundle")
    assert status == 200
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
        member = tar.extractfile("clgwd-support/trace.json")
        assert member is not None
        trace = json.load(member)
    assert not [n for n in names if n.endswith(".pcap")]
    assert trace["available"] is True
    [capture] = trace["data"]["captures"]
    assert capture["id"] == stopped["captures"][0]["id"]
    assert capture["files"][0]["bytes"] >= 24 and capture["filter"]
