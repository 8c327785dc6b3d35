"""The JSON API against the real PBX sync and tunnel parts; the cloud and network
parts are still stood in for on the router where a test needs them."""

from __future__ import annotations

import asyncio
import io
import logging
import tarfile
from typing import Any

import aiohttp
import pytest

from clgwd.cli.demo import sample_directory
from clgwd.config import Secret
from clgwd.store import Severity
from clgwd.system.reset import PENDING_MARKER
from clgwd.tunnel.component import TunnelComponent
from clgwd.web.api.overview import derive_state
from clgwd.web.messages import human
from tests.web.conftest import Gateway, setup_admin

CSV_PBX = {"type": "csv", "name": "Sample directory",
           "options": {"path": str(sample_directory())}}
SITE = {"site_name": "Ballad Industries", "address": "2301 Express Avenue", "city": "Ottawa",
        "country": "Canada", "province": "Ontario", "postal_code": "K0A 2Z0"}


async def _req(client: aiohttp.ClientSession, gw: Gateway, csrf: str, method: str,
               path: str, body: Any = None) -> tuple[int, Any]:
    async with client.request(method, gw.base + path, json=body,
                              headers={"X-CSRF-Token": csrf}) as resp:
        ctype = resp.headers.get("Content-Type", "")
        data = await resp.json() if "json" in ctype else await resp.read()
        return resp.status, data


async def test_site_info_saved_with_event_and_csv(gateway: Gateway,
                                                  client: aiohttp.ClientSession) -> None:
    csrf = await setup_admin(client, gateway)
    status, body = await _req(client, gateway, csrf, "PUT", "/api/v1/site", SITE)
    assert status == 200 and body["changed"] == sorted(SITE)
    status, body = await _req(client, gateway, csrf, "PUT", "/api/v1/site",
                              {**SITE, "city": "Kanata"})
    assert body["changed"] == ["city"]
    status, body = await _req(client, gateway, csrf, "GET", "/api/v1/site")
    assert body == {"configured": True, "site": {**SITE, "city": "Kanata"}}
    status, body = await _req(client, gateway, csrf, "GET", "/api/v1/events?asset=Site")
    assert [(e["action"], e["properties_changed"]) for e in body["events"]] == [
        ("Edit", ["city"]), ("Create", sorted(SITE))]
    status, body = await _req(client, gateway, csrf, "GET",
                              "/api/v1/events?asset=Site&action=Edit")
    assert len(body["events"]) == 1
    status, csv_bytes = await _req(client, gateway, csrf, "GET", "/api/v1/events.csv?asset=Site")
    lines = csv_bytes.decode().splitlines()
    assert lines[0].startswith("Event ID,Date,Actor") and len(lines) == 3
    assert "local:web:admin" in lines[1]


async def test_invalid_input_names_the_field(gateway: Gateway,
                                             client: aiohttp.ClientSession) -> None:
    csrf = await setup_admin(client, gateway)
    status, body = await _req(client, gateway, csrf, "PUT", "/api/v1/site",
                              {**SITE, "site_name": "", "postal_code": "%%"})
    assert status == 422 and body["code"] == "invalid_input"
    assert "site_name" in body["message"] and "postal_code" in body["message"]
    bad_ports = [
        {"name": "eth0", "mode": "static", "address": "192.0.2.300", "netmask": "255.255.255.0",
         "dns": ["192.0.2.53"]},
        {"name": "eth0", "mode": "static", "address": "192.0.2.10", "netmask": "255.0.255.0",
         "dns": ["192.0.2.53"]},
        {"name": "eth0", "mode": "static", "address": "192.0.2.10", "netmask": "255.255.255.0",
         "gateway": "198.51.100.1", "dns": ["192.0.2.53"]},
        {"name": "eth0", "mode": "static", "address": "192.0.2.0", "netmask": "255.255.255.0",
         "dns": ["192.0.2.53"]},
        {"name": "eth0", "mode": "static", "address": "192.0.2.10", "netmask": "255.255.255.0"},
    ]
    for port in bad_ports:
        status, body = await _req(client, gateway, csrf, "POST", "/api/v1/network/apply",
                                  {"ports": [port]})
        assert status == 422 and body["code"] == "invalid_input", port
    status, body = await _req(client, gateway, csrf, "PUT", "/api/v1/site", None)
    assert status == 422


async def test_network_pages_reach_the_real_handlers(gateway: Gateway,
                                                     client: aiohttp.ClientSession) -> None:
    """network.get/apply/confirm are the network part's. This gateway manages no ports
    (a test machine), so a valid proposal is refused by the server, never applied."""
    csrf = await setup_admin(client, gateway)
    status, body = await _req(client, gateway, csrf, "GET", "/api/v1/network")
    assert status == 200 and body == {"ports": [], "awaiting_confirmation": None}
    good = {"name": "eth0", "mode": "static", "address": "192.0.2.10",
            "netmask": "255.255.255.0", "gateway": "192.0.2.1", "dns": ["192.0.2.53"]}
    status, body = await _req(client, gateway, csrf, "POST", "/api/v1/network/apply",
                              {"ports": [good]})
    assert (status, body["code"]) == (422, "invalid_network_config")
    assert "does not manage its network ports" in body["message"]
    status, body = await _req(client, gateway, csrf, "POST", "/api/v1/network/confirm",
                              {"token": "stale-token"})
    assert (status, body["code"]) == (409, "nothing_to_confirm")
    assert "unknown or expired" in body["message"]


async def test_preflight_runs_the_network_part_checks(preflight_gateway: Gateway,
                                                      client: aiohttp.ClientSession) -> None:
    """POST /network/preflight answers the network part's report: one row per configured
    check, PASS for the listeners, FAIL with the reason for the refused port."""
    gw = preflight_gateway
    csrf = await setup_admin(client, gw)
    status, body = await _req(client, gw, csrf, "POST", "/api/v1/network/preflight", {})
    assert status == 200, body
    checks = {c["name"]: c for c in body["checks"]}
    assert set(checks) == {"cloud", "sip-tls", "pbx"}
    assert checks["cloud"]["ok"] and checks["pbx"]["ok"]
    assert checks["cloud"]["target"].startswith("127.0.0.1:")
    assert not checks["sip-tls"]["ok"]
    assert checks["sip-tls"]["detail"] == "connection refused"
    assert body["ok"] is False
    assert all(c["seconds"] >= 0 for c in body["checks"])


async def test_preflight_needs_session_and_csrf(preflight_gateway: Gateway,
                                                client: aiohttp.ClientSession) -> None:
    """Like every other POST: no session is 401, a session without the CSRF header 403,
    and a body with unknown keys 422."""
    gw = preflight_gateway
    async with client.post(f"{gw.base}/api/v1/network/preflight", json={}) as resp:
        assert resp.status == 401
    csrf = await setup_admin(client, gw)
    async with client.post(f"{gw.base}/api/v1/network/preflight", json={}) as resp:
        assert resp.status == 403
    status, _ = await _req(client, gw, csrf, "POST", "/api/v1/network/preflight",
                           {"targets": ["192.0.2.1"]})
    assert status == 422


async def test_cloud_enroll_with_the_reference_cloud(cloud_gateway: Gateway,
                                                     client: aiohttp.ClientSession) -> None:
    """Wrong token: the cloud's reason; right token: enrolled, then connected. The
    token is never sent back."""
    gw = cloud_gateway
    assert gw.cloud is not None
    csrf = await setup_admin(client, gw)
    status, body = await _req(client, gw, csrf, "GET", "/api/v1/cloud")
    assert status == 200 and (body["enrolled"], body["link"]) == (False, "not_enrolled")
    status, body = await _req(client, gw, csrf, "POST", "/api/v1/cloud/enroll",
                              {"account_id": "1234567891", "token": "not-the-token"})
    assert (status, body["code"]) == (403, "enrollment_rejected")
    assert "refused the enrollment" in body["message"]
    token = await gw.cloud.create_token("1234567891")
    status, body = await _req(client, gw, csrf, "POST", "/api/v1/cloud/enroll",
                              {"account_id": "1234567891", "token": token})
    assert status == 200, body
    assert body["enrolled"] is True and body["account_id"] == "1234567891"
    assert token not in str(body)
    await _wait_connected(client, gw, csrf)


async def _wait_connected(client: aiohttp.ClientSession, gw: Gateway, csrf: str) -> None:
    for _ in range(200):
        _, body = await _req(client, gw, csrf, "GET", "/api/v1/cloud")
        if body.get("link") == "connected":
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"cloud link not connected: {body}")


async def _enroll(client: aiohttp.ClientSession, gw: Gateway, csrf: str) -> None:
    assert gw.cloud is not None
    token = await gw.cloud.create_token("1234567891")
    status, body = await _req(client, gw, csrf, "POST", "/api/v1/cloud/enroll",
                              {"account_id": "1234567891", "token": token})
    assert status == 200, body
    await _wait_connected(client, gw, csrf)


async def test_pbx_password_never_returned(gateway: Gateway,
                                           client: aiohttp.ClientSession) -> None:
    """The sync part stores the password as a secret; the API only says it is set."""
    csrf = await setup_admin(client, gateway)
    pbx = {"type": "ldap", "name": "HQ", "address": "pbx.example.test", "port": 389,
           "username": "cn=cloudlink", "password": "s3cret-pbx-pass",
           "options": {"base_dn": "dc=example,dc=test"}}
    status, body = await _req(client, gateway, csrf, "PUT", "/api/v1/pbx", pbx)
    assert status == 200 and "password" not in body and body["password_set"] is True
    status, body = await _req(client, gateway, csrf, "GET", "/api/v1/pbx")
    assert "s3cret-pbx-pass" not in str(body) and body["password_set"] is True
    assert (body["type"], body["address"], body["options"]["base_dn"]) == (
        "ldap", "pbx.example.test", "dc=example,dc=test")
    secret = await gateway.store.secrets.get("sync.pbx_password")
    assert secret is not None and secret.reveal() == "s3cret-pbx-pass"
    status, body = await _req(client, gateway, csrf, "GET", "/api/v1/events?asset=PBX")
    assert "s3cret-pbx-pass" not in str(body) and "password" in str(body)
    status, body = await _req(client, gateway, csrf, "PUT", "/api/v1/pbx",
                              {**pbx, "options": {}})
    assert status == 422 and "base_dn" in body["message"]
    status, body = await _req(client, gateway, csrf, "PUT", "/api/v1/pbx",
                              {**pbx, "type": "mx_one", "options": {}})
    assert status == 501 and "MX-ONE" in body["message"]
    status, body = await _req(client, gateway, csrf, "PUT", "/api/v1/pbx",
                              {"type": "ldap", "name": "HQ",
                               "options": {"base_dn": "dc=example,dc=test"}})
    assert status == 422 and "address" in body["message"]
    status, body = await _req(client, gateway, csrf, "PUT", "/api/v1/pbx",
                              {**CSV_PBX, "options": {"path": "directory.csv"}})
    assert status == 422 and "absolute" in body["message"]


async def test_connect_step_preview_and_sync_with_the_sample_directory(
        gateway: Gateway, client: aiohttp.ClientSession) -> None:
    """Test connection (no sync), preview with names, Sync now, then an empty preview."""
    csrf = await setup_admin(client, gateway)
    status, body = await _req(client, gateway, csrf, "POST", "/api/v1/pbx/test")
    assert status == 409 and body["code"] == "pbx_not_configured"
    status, body = await _req(client, gateway, csrf, "PUT", "/api/v1/pbx", CSV_PBX)
    assert status == 200 and body["configured"] and body["connected"] is False
    status, body = await _req(client, gateway, csrf, "POST", "/api/v1/pbx/test")
    assert status == 200 and (body["users"], body["dids"]) == (20, 11)
    assert body["irregularities"]["no_email_count"] == 3
    assert body["irregularities"]["duplicate_email_count"] == 2
    status, body = await _req(client, gateway, csrf, "GET", "/api/v1/inventory")
    assert body["users"] == 0  # a test syncs nothing
    status, body = await _req(client, gateway, csrf, "GET", "/api/v1/sync/preview")
    assert status == 200 and body["counts"]["created"] == 20
    names = {c["user"]["display_name"]: c["user"] for c in body["changes"]
             if c["op"] == "create"}
    assert "email_problem" not in names["Alice Martin"]
    assert names["Farid Haddad"]["email_problem"] == "no_email"  # synced, flagged
    status, body = await _req(client, gateway, csrf, "POST", "/api/v1/sync/now")
    assert status == 202 and body["result"] == "ok" and body["counts"]["created"] == 20
    status, body = await _req(client, gateway, csrf, "GET", "/api/v1/sync/preview")
    assert body["changes"] == [] and body["counts"]["unchanged"] == 20
    status, body = await _req(client, gateway, csrf, "PUT", "/api/v1/sync/schedule",
                              {"interval_minutes": 30})
    assert status == 200 and body["interval_minutes"] == 30 and body["last_sync"]["ok"]
    assert body["next_sync_at"] is None or body["next_sync_at"] > body["last_sync"]["at"]


async def test_overview_next_step_follows_the_parts(cloud_gateway: Gateway,
                                                    client: aiohttp.ClientSession) -> None:
    gateway = cloud_gateway
    csrf = await setup_admin(client, gateway)
    status, body = await _req(client, gateway, csrf, "GET", "/api/v1/overview")
    assert status == 200
    assert body["next"]["step"] == "Configure gateway" and body["next"]["page"] == "gateway"
    assert body["cloud"]["available"] is True
    assert body["cloud"]["data"]["link"] == "not_enrolled"
    await _req(client, gateway, csrf, "PUT", "/api/v1/site", SITE)
    status, body = await _req(client, gateway, csrf, "GET", "/api/v1/overview")
    assert body["next"]["step"] == "Configure gateway" and body["next"]["page"] == "cloud"
    await _enroll(client, gateway, csrf)
    status, body = await _req(client, gateway, csrf, "GET", "/api/v1/overview")
    assert body["next"]["step"] == "Add PBX" and not body["next"]["problem"]
    await _req(client, gateway, csrf, "PUT", "/api/v1/pbx", CSV_PBX)
    status, body = await _req(client, gateway, csrf, "GET", "/api/v1/overview")
    assert body["next"]["step"] == "Connect the PBX"


def test_derive_state_from_part_answers() -> None:
    sections: dict[str, dict[str, Any]] = {
        "cloud": {"available": True, "data": {"enrolled": True, "link": "connected"}},
        "pbx": {"available": True, "data": {"configured": True, "connected": True}},
        "sync": {"available": True, "data": {"last_sync": {"ok": True, "at": 1.0}}},
        "inventory": {"available": True, "data": {"users": 3}},
        "tunnels": {"available": False},
    }
    state = derive_state(True, sections, [])
    assert (state.cloud_connected, state.pbx_connected, state.last_sync_ok,
            state.synced_users) == (True, True, True, 3)
    sections["sync"] = {"available": True, "data": {"last_sync": None}}
    assert derive_state(True, sections, []).last_sync_ok is False
    sections["inventory"] = {"available": True, "error": {"code": "x", "message": "y"}}
    assert derive_state(True, sections, []).synced_users is None


async def test_support_bundle_is_a_redacted_tarball(gateway: Gateway,
                                                    client: aiohttp.ClientSession) -> None:
    csrf = await setup_admin(client, gateway)
    logging.getLogger("clgwd.test").warning("bundle-marker %s",
                                            Secret("pbx-secret-value").reveal())
    status, data = await _req(client, gateway, csrf, "GET", "/api/v1/support-bundle")
    assert status == 200
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        names = sorted(m.name for m in tar.getmembers())
        logs = tar.extractfile("clgwd-support/logs.json").read().decode()  # type: ignore[union-attr]
        config = tar.extractfile("clgwd-support/config.json").read().decode()  # type: ignore[union-attr]
        recent = tar.extractfile("clgwd-support/recent.log").read().decode()  # type: ignore[union-attr]
    assert names == [f"clgwd-support/{n}" for n in (
        "alerts.json", "config.json", "events.csv", "logs.json", "recent.log", "status.json",
        "trace.json", "version.json")]
    assert "bundle-marker" in recent and "pbx-secret-value" not in recent
    assert "bundle-marker" in logs and "pbx-secret-value" not in logs  # the system part's
    assert '"source": "memory"' in logs
    assert "tls_listen" in config
    admin_hash = await gateway.store.secrets.get("web.admin_password_hash")
    assert admin_hash is not None and admin_hash.reveal() not in data.decode("latin-1")


async def test_factory_reset_needs_revert(gateway: Gateway,
                                          client: aiohttp.ClientSession) -> None:
    """A wrong word changes nothing; ``revert`` commits the reset (the marker the next
    start wipes the state for) and answers 202 before the daemon restarts."""
    csrf = await setup_admin(client, gateway)
    marker = gateway.store.db.state_dir / PENDING_MARKER
    status, body = await _req(client, gateway, csrf, "POST", "/api/v1/system/factory-reset",
                              {"confirm": "Revert"})
    assert status == 422 and "revert" in body["message"] and not marker.exists()
    status, body = await _req(client, gateway, csrf, "POST", "/api/v1/system/factory-reset",
                              {"confirm": "revert"})
    assert status == 202 and body["state"] == "resetting" and marker.exists()


async def test_openapi_lists_every_route(gateway: Gateway,
                                         client: aiohttp.ClientSession) -> None:
    async with client.get(f"{gateway.base}/api/v1/openapi.json") as resp:
        doc = await resp.json()
    assert doc["openapi"] == "3.1.0"
    assert {"/api/v1/site", "/api/v1/pbx", "/api/v1/overview",
            "/api/v1/system/factory-reset", "/api/v1/network/preflight"} <= set(doc["paths"])
    assert doc["paths"]["/api/v1/site"]["put"]["security"] == [{"session": [], "csrf": []}]


async def test_update_schedule_validates_time_zone(update_gateway: Gateway,
                                                  client: aiohttp.ClientSession) -> None:
    gateway = update_gateway
    csrf = await setup_admin(client, gateway)
    body = {"frequency": "weekly", "weekdays": ["mon"], "time": "02:30",
            "timezone": "Mars/Olympus"}
    status, answer = await _req(client, gateway, csrf, "PUT", "/api/v1/update/schedule", body)
    assert status == 422 and "unknown time zone" in answer["message"]
    status, answer = await _req(client, gateway, csrf, "PUT", "/api/v1/update/schedule",
                                {**body, "weekdays": []})
    assert status == 422 and "weekday" in answer["message"]
    status, answer = await _req(client, gateway, csrf, "PUT", "/api/v1/update/schedule",
                                {**body, "timezone": "America/Toronto"})
    assert status == 200
    assert {k: answer[k] for k in body} == {**body, "timezone": "America/Toronto"}
    assert answer["next_window"]["local"].endswith(("T02:30-05:00", "T02:30-04:00"))


async def test_update_status_pause_and_resume(update_gateway: Gateway,
                                             client: aiohttp.ClientSession) -> None:
    """The Advanced page's update facts and its Pause/Resume control (docs/updates.md)."""
    gateway = update_gateway
    csrf = await setup_admin(client, gateway)
    status, view = await _req(client, gateway, csrf, "GET", "/api/v1/update/status")
    assert status == 200
    assert {"current_version", "last_update", "last_check", "next_check",
            "paused"} <= set(view)
    assert view["paused"] is False and view["mode"] == "command"
    status, view = await _req(client, gateway, csrf, "POST", "/api/v1/update/pause", {})
    assert status == 200 and view["paused"] is True
    status, view = await _req(client, gateway, csrf, "GET", "/api/v1/update/status")
    assert view["paused"] is True
    status, view = await _req(client, gateway, csrf, "POST", "/api/v1/update/resume", {})
    assert status == 200 and view["paused"] is False
    status, _answer = await _req(client, gateway, csrf, "POST", "/api/v1/update/pause",
                                {"now": True})
    assert status == 422


async def test_onboarding_complete_with_every_part_present(
        cloud_gateway: Gateway, client: aiohttp.ClientSession) -> None:
    """The real cloud link (enrolled with the reference cloud), PBX sync and tunnel
    parts, on the demo's sample directory."""
    gateway = cloud_gateway
    csrf = await setup_admin(client, gateway)
    await _req(client, gateway, csrf, "PUT", "/api/v1/site", SITE)
    await _enroll(client, gateway, csrf)
    await _req(client, gateway, csrf, "PUT", "/api/v1/pbx", CSV_PBX)
    status, body = await _req(client, gateway, csrf, "POST", "/api/v1/pbx/test")
    assert status == 200
    status, body = await _req(client, gateway, csrf, "POST", "/api/v1/sync/now")
    assert status == 202 and body["result"] == "ok"
    status, body = await _req(client, gateway, csrf, "GET", "/api/v1/overview")
    assert status == 200
    assert body["next"] == {"step": "Onboarding complete", "page": "overview",
                            "message": "The gateway is onboarded and syncing.",
                            "problem": False}
    assert body["pbx"]["data"]["type"] == "csv" and body["pbx"]["data"]["connected"]
    assert body["sync"]["data"]["last_sync"]["users"] == 20
    assert (body["inventory"]["data"]["users"], body["inventory"]["data"]["dids"]) == (20, 11)
    status, body = await _req(client, gateway, csrf, "GET", "/api/v1/deployment")
    assert (body["account_id"], body["synced_users"], body["ready"]) == (
        "1234567891", 20, True)
    await gateway.store.alerts.raise_alert("pbx.down", Severity.CRITICAL,
                                           "The PBX does not answer")
    status, body = await _req(client, gateway, csrf, "GET", "/api/v1/overview")
    assert body["next"]["problem"] and body["next"]["message"] == "The PBX does not answer"


async def test_a_broken_part_does_not_blank_the_overview(
        gateway: Gateway, client: aiohttp.ClientSession,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A part whose handler crashes shows as an error; the rest still renders."""
    csrf = await setup_admin(client, gateway)

    async def crash() -> Any:
        raise RuntimeError("bug in a part")

    monkeypatch.setattr(gateway.daemon.component("link"), "cloud_status", crash)
    status, body = await _req(client, gateway, csrf, "GET", "/api/v1/overview")
    assert status == 200
    assert body["cloud"]["error"]["code"] == "internal_error"
    assert "bug in a part" not in str(body)
    assert body["next"]["step"] == "Configure gateway"


async def test_tunnels_listed_started_and_stopped_on_the_real_part(
        tunnel_gateway: Gateway, client: aiohttp.ClientSession) -> None:
    """The page's tunnel endpoints drive the real tunnel part; each change is audited
    with the logged-in admin as the actor."""
    gw = tunnel_gateway
    csrf = await setup_admin(client, gw)
    status, body = await _req(client, gw, csrf, "GET", "/api/v1/tunnels")
    assert status == 200
    [row] = body["tunnels"]
    assert (row["name"], row["target"], row["host"], row["ports"], row["status"],
            row["streams"]) == ("gateway-ui", "gateway-ui", "127.0.0.1", [8443], "stopped", 0)
    status, body = await _req(client, gw, csrf, "GET", "/api/v1/overview")
    assert body["tunnels"]["data"]["tunnels"][0]["name"] == "gateway-ui"
    status, body = await _req(client, gw, csrf, "POST", "/api/v1/tunnels/start",
                              {"name": "gateway-ui", "expiry": 600})
    assert status == 200
    [row] = body["tunnels"]
    assert row["status"] == "started" and row["started_by"] == "local:web:admin"
    assert 590 < row["expires_in"] <= 600
    status, body = await _req(client, gw, csrf, "POST", "/api/v1/tunnels/stop", {"all": True})
    assert status == 200 and body["tunnels"][0]["status"] == "stopped"
    tunnel = gw.daemon.component("tunnel")
    assert isinstance(tunnel, TunnelComponent)
    records = [(r.type, r.record["tunnel"], r.record["actor"])
               for r in await tunnel.audit.records()]
    assert records == [("tunnel_start", "gateway-ui", "local:web:admin"),
                       ("tunnel_stop", "gateway-ui", "local:web:admin")]


async def test_tunnel_requests_refused_with_the_reason(
        tunnel_gateway: Gateway, client: aiohttp.ClientSession) -> None:
    """Malformed requests are 422 naming the problem; an unknown tunnel is the tunnel
    part's own 404 and message; nothing is started."""
    gw = tunnel_gateway
    csrf = await setup_admin(client, gw)
    for path, bad in (("start", {}), ("start", {"name": "gateway-ui", "all": True}),
                      ("start", {"name": "Gateway UI"}),
                      ("start", {"name": "gateway-ui", "expiry": 0}),
                      ("stop", {"name": "gateway-ui", "expiry": 60})):
        status, body = await _req(client, gw, csrf, "POST", f"/api/v1/tunnels/{path}", bad)
        assert status == 422 and body["code"] == "invalid_input", bad
    status, body = await _req(client, gw, csrf, "POST", "/api/v1/tunnels/start",
                              {"name": "msl-admin"})
    assert status == 404 and body == {"code": "tunnel_not_found",
                                      "message": "no tunnel named 'msl-admin' is configured",
                                      **human("tunnel_not_found")}
    status, body = await _req(client, gw, csrf, "GET", "/api/v1/tunnels")
    assert body["tunnels"][0]["status"] == "stopped"


async def test_no_tunnels_configured_is_an_empty_list(
        gateway: Gateway, client: aiohttp.ClientSession) -> None:
    """Without tunnel config the real part answers an empty list (not "not available")."""
    csrf = await setup_admin(client, gateway)
    status, body = await _req(client, gateway, csrf, "GET", "/api/v1/overview")
    assert body["tunnels"] == {"available": True, "data": {"tunnels": []}}
    status, body = await _req(client, gateway, csrf, "POST", "/api/v1/tunnels/start",
                              {"all": True})
    assert status == 200 and body == {"tunnels": []}


async def test_cloud_proxy_setting_through_the_page_api(gateway: Gateway,
                                                        client: aiohttp.ClientSession) -> None:
    """PUT /cloud/proxy stores the page's proxy (password only as password_set), GET shows
    it as the proxy in force; a manual proxy without host is a 422 naming the field."""
    csrf = await setup_admin(client, gateway)
    status, body = await _req(client, gateway, csrf, "GET", "/api/v1/cloud/proxy")
    assert status == 200 and body["mode"] == "default" and body["effective"] is None
    status, body = await _req(client, gateway, csrf, "PUT", "/api/v1/cloud/proxy", {
        "mode": "manual", "host": "127.0.0.1", "port": 3129, "username": "gw",
        "password": "Pr0xy-secret", "no_proxy": [".lan.example.com"]})
    assert status == 200, body
    assert body["password_set"] is True and "Pr0xy-secret" not in str(body)
    assert body["effective"] == {"proxy": "http://gw@127.0.0.1:3129", "source": "page",
                                 "no_proxy": [".lan.example.com"]}
    status, body = await _req(client, gateway, csrf, "PUT", "/api/v1/cloud/proxy",
                              {"mode": "manual"})
    assert status == 422 and body["code"] == "invalid_proxy" and "host" in body["message"]
    status, body = await _req(client, gateway, csrf, "PUT", "/api/v1/cloud/proxy",
                              {"mode": "none"})
    assert status == 200 and body["effective"] is None and body["password_set"] is False


async def test_safety_abort_way_out_through_the_page_api(
        gateway: Gateway, client: aiohttp.ClientSession, tmp_path: Any) -> None:
    """An abort is listed page by page; a stale or miscounted confirmation is refused
    with the technician's words; the right one deletes once; sync/status answers."""
    csrf = await setup_admin(client, gateway)
    csv = tmp_path / "directory.csv"
    lines = sample_directory().read_text(encoding="utf-8").splitlines()
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    status, _ = await _req(client, gateway, csrf, "PUT", "/api/v1/pbx",
                           {**CSV_PBX, "options": {"path": str(csv)}})
    assert status == 200
    status, body = await _req(client, gateway, csrf, "POST", "/api/v1/sync/now")
    assert status == 202 and body["result"] == "ok"
    await asyncio.to_thread(csv.write_text, "\n".join(lines[:9]) + "\n", encoding="utf-8")
    status, body = await _req(client, gateway, csrf, "GET", "/api/v1/sync/preview")
    assert body["error_code"] == "sync_safety_abort" and body["safety_abort"]["count"] >= 8
    status, body = await _req(client, gateway, csrf, "POST", "/api/v1/sync/now")
    assert body["result"] == "aborted"
    held = body["safety_abort"]
    status, first = await _req(client, gateway, csrf, "GET", "/api/v1/sync/missing?limit=5")
    assert status == 200 and first["set_id"] == held["set_id"] and len(first["users"]) == 5
    status, rest = await _req(client, gateway, csrf, "GET",
                              "/api/v1/sync/missing?offset=5&limit=200")
    assert len(rest["users"]) == held["count"] - 5
    status, body = await _req(client, gateway, csrf, "GET", "/api/v1/sync/missing?limit=0")
    assert status == 422 and "limit" in body["message"]
    status, body = await _req(client, gateway, csrf, "POST", "/api/v1/sync/missing/keep",
                              {"set_id": "00ff"})
    assert status == 409 and body["code"] == "sync_missing_changed"
    assert body["title"] == human("sync_missing_changed")["title"]
    status, body = await _req(client, gateway, csrf, "POST", "/api/v1/sync/missing/delete",
                              {"set_id": held["set_id"], "confirm": held["count"] + 1})
    assert status == 422 and body["code"] == "sync_confirm_mismatch"
    status, body = await _req(client, gateway, csrf, "POST", "/api/v1/sync/missing/delete",
                              {"set_id": held["set_id"], "confirm": held["count"]})
    assert status == 200 and body["result"] == "ok"
    assert body["counts"]["deleted"] == held["count"] and body["actor"] == "local:web:admin"
    status, body = await _req(client, gateway, csrf, "GET", "/api/v1/sync/status")
    assert status == 200 and body["running"] is False and body["safety_abort"] is None
    assert body["last_sync"]["result"] == "ok" and body["queued"] > 0
    status, body = await _req(client, gateway, csrf, "GET",
                              "/api/v1/events?asset=PBX%20users%20missing")
    assert [e["actor"] for e in body["events"]] == ["local:web:admin"]


async def test_kept_users_are_counted_and_listed(
        gateway: Gateway, client: aiohttp.ClientSession, tmp_path: Any) -> None:
    """After "Keep these users" the inventory counts them apart from the synced users,
    and GET /sync/kept lists them page by page (a bad page is refused in words)."""
    csrf = await setup_admin(client, gateway)
    csv = tmp_path / "directory.csv"
    lines = sample_directory().read_text(encoding="utf-8").splitlines()
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    await _req(client, gateway, csrf, "PUT", "/api/v1/pbx",
               {**CSV_PBX, "options": {"path": str(csv)}})
    status, body = await _req(client, gateway, csrf, "POST", "/api/v1/sync/now")
    assert status == 202 and body["result"] == "ok"
    synced = body["counts"]["eligible"]
    await asyncio.to_thread(csv.write_text, "\n".join(lines[:9]) + "\n", encoding="utf-8")
    status, body = await _req(client, gateway, csrf, "POST", "/api/v1/sync/now")
    held = body["safety_abort"]
    status, body = await _req(client, gateway, csrf, "POST", "/api/v1/sync/missing/keep",
                              {"set_id": held["set_id"]})
    assert status == 200 and body["kept"] == held["count"]
    status, inventory = await _req(client, gateway, csrf, "GET", "/api/v1/inventory")
    assert status == 200 and inventory["kept"] == held["count"]
    assert inventory["users"] == synced - held["count"]
    status, first = await _req(client, gateway, csrf, "GET", "/api/v1/sync/kept?limit=5")
    assert status == 200 and first["count"] == held["count"] and len(first["users"]) == 5
    assert set(first["users"][0]) == {"source_id", "source_key", "kept_at", "extension",
                                      "name", "email"}
    status, rest = await _req(client, gateway, csrf, "GET", "/api/v1/sync/kept?offset=5")
    assert len(rest["users"]) == held["count"] - 5
    status, body = await _req(client, gateway, csrf, "GET", "/api/v1/sync/kept?limit=500")
    assert status == 422 and "limit" in body["message"]
