"""Security of the web API: auth, CSRF, Host check, lockout, headers, HTTPS."""

from __future__ import annotations

import aiohttp
import pytest

from clgwd.web import auth
from clgwd.web.messages import human
from clgwd.web.security import SESSION_COOKIE
from tests.web.conftest import PASSWORD, Gateway, setup_admin


async def test_plain_http_redirects_to_https_except_health(
        gateway: Gateway, client: aiohttp.ClientSession) -> None:
    async with client.get(f"{gateway.plain}/api/v1/site?x=1", allow_redirects=False) as resp:
        assert resp.status == 308
        assert resp.headers["Location"] == f"{gateway.base}/api/v1/site?x=1"
    async with client.get(f"{gateway.plain}/api/v1/health") as resp:
        assert resp.status == 200
    async with client.get(f"{gateway.plain}/metrics") as resp:
        assert resp.status == 200
        assert "clgwd" in await resp.text()


async def test_no_change_without_login(gateway: Gateway, client: aiohttp.ClientSession) -> None:
    site = {"site_name": "A", "city": "B", "country": "C", "province": "D",
            "postal_code": "K0A"}
    async with client.put(f"{gateway.base}/api/v1/site", json=site) as resp:
        assert resp.status == 401
        assert (await resp.json())["code"] == "unauthorized"
    assert await gateway.store.settings.get("web.site") is None
    for path in ("/api/v1/overview", "/api/v1/events", "/api/v1/support-bundle"):
        async with client.get(gateway.base + path) as resp:
            assert resp.status == 401, path


async def test_csrf_token_required_for_changes(gateway: Gateway,
                                               client: aiohttp.ClientSession) -> None:
    csrf = await setup_admin(client, gateway)
    site = {"site_name": "A", "city": "B", "country": "C", "province": "D",
            "postal_code": "K0A"}
    async with client.put(f"{gateway.base}/api/v1/site", json=site) as resp:
        assert resp.status == 403
        assert "X-CSRF-Token" in (await resp.json())["message"]
    async with client.put(f"{gateway.base}/api/v1/site", json=site,
                          headers={"X-CSRF-Token": "wrong" + csrf}) as resp:
        assert resp.status == 403
    async with client.put(f"{gateway.base}/api/v1/site", json=site,
                          headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"}
                          ) as resp:
        assert resp.status == 403
        assert "cross-origin" in (await resp.json())["message"]
    assert await gateway.store.settings.get("web.site") is None
    async with client.put(f"{gateway.base}/api/v1/site", json=site,
                          headers={"X-CSRF-Token": csrf}) as resp:
        assert resp.status == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:443", "10.9.8.7",
                                  "cloudlink.local.evil.example", ""])
async def test_wrong_host_is_refused(gateway: Gateway, client: aiohttp.ClientSession,
                                     host: str) -> None:
    async with client.get(f"{gateway.base}/api/v1/session", headers={"Host": host}) as resp:
        assert resp.status == 421
        assert (await resp.json())["code"] == "wrong_host"
        assert resp.headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("host", ["cloudlink.local", "localhost:8443", "127.0.0.1",
                                  "CloudLink.Local."])
async def test_own_names_are_accepted(gateway: Gateway, client: aiohttp.ClientSession,
                                      host: str) -> None:
    async with client.get(f"{gateway.base}/api/v1/session", headers={"Host": host}) as resp:
        assert resp.status == 200


async def test_setup_code_then_password_then_login(gateway: Gateway,
                                                   client: aiohttp.ClientSession) -> None:
    url = f"{gateway.base}/api/v1/session/setup"
    async with client.post(url, json={"setup_code": "AAAAA-AAAAA",
                                      "password": PASSWORD}) as resp:
        assert resp.status == 401
        assert "setup code" in (await resp.json())["message"]
    async with client.post(url, json={"setup_code": gateway.setup_code.lower(),
                                      "password": "short"}) as resp:
        assert resp.status == 422
        assert "at least 10" in (await resp.json())["message"]
    await setup_admin(client, gateway)
    async with client.post(url, json={"setup_code": gateway.setup_code,
                                      "password": PASSWORD}) as resp:
        assert resp.status == 409
    stored = await gateway.store.secrets.get(auth.ADMIN_HASH_SECRET)
    assert stored is not None and stored.reveal().startswith("$argon2id$")
    async with client.get(f"{gateway.base}/api/v1/session") as resp:
        body = await resp.json()
        assert body["authenticated"] and not body["setup_required"]
        set_cookie = resp.request_info.headers.get("Cookie", "")
        assert "__Host-clgwd_session" in set_cookie


async def test_session_cookie_flags(gateway: Gateway, client: aiohttp.ClientSession) -> None:
    async with client.post(f"{gateway.base}/api/v1/session/setup",
                           json={"setup_code": gateway.setup_code,
                                 "password": PASSWORD}) as resp:
        cookie = resp.headers["Set-Cookie"].lower()
    assert cookie.startswith("__host-clgwd_session=")
    assert "secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    assert "path=/" in cookie and "domain" not in cookie


async def test_login_lockout_backs_off(gateway: Gateway, client: aiohttp.ClientSession) -> None:
    await setup_admin(client, gateway)
    url = f"{gateway.base}/api/v1/session/login"
    statuses = []
    for _ in range(auth.FREE_FAILURES + 1):
        async with client.post(url, json={"password": "wrong password!"}) as resp:
            statuses.append(resp.status)
    assert statuses[:auth.FREE_FAILURES] == [401] * auth.FREE_FAILURES
    assert statuses[-1] == 429
    async with client.get(f"{gateway.plain}/metrics") as resp:
        text = await resp.text()
    assert 'clgwd_web_logins_total{kind="login",result="failed"} 5.0' in text
    assert 'clgwd_web_logins_total{kind="setup",result="ok"} 1.0' in text
    # Even the right password is refused while locked out.
    async with client.post(url, json={"password": PASSWORD}) as resp:
        assert resp.status == 429
        assert int(resp.headers["Retry-After"]) >= 1
        assert "try again" in (await resp.json())["message"]


async def test_security_headers(gateway: Gateway, client: aiohttp.ClientSession) -> None:
    async with client.get(f"{gateway.base}/") as resp:
        assert resp.status == 200
        csp = resp.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert "Strict-Transport-Security" not in resp.headers  # self-signed: no HSTS
        assert "<script>" not in await resp.text()


async def test_logout_ends_the_session(gateway: Gateway, client: aiohttp.ClientSession) -> None:
    csrf = await setup_admin(client, gateway)
    async with client.post(f"{gateway.base}/api/v1/session/logout",
                           headers={"X-CSRF-Token": csrf}) as resp:
        assert resp.status == 200
    async with client.get(f"{gateway.base}/api/v1/overview") as resp:
        assert resp.status == 401


async def test_unregistered_part_answers_not_supported_yet(
        gateway: Gateway, client: aiohttp.ClientSession,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A capability of a part not in this build is a clear 501, never fake data."""
    # Every known method has an owner now; take one out, as a build without it would be.
    monkeypatch.delitem(gateway.daemon.commands._handlers, "system.reboot")
    csrf = await setup_admin(client, gateway)
    async with client.post(f"{gateway.base}/api/v1/system/reboot", json={},
                           headers={"X-CSRF-Token": csrf}) as resp:
        assert resp.status == 501
        body = await resp.json()
        assert body == {"code": "not_supported_yet",
                        "message": "system.reboot is not supported by this gateway version yet",
                        **human("not_supported_yet")}


async def test_redirect_keeps_the_name_used(gateway: Gateway,
                                            client: aiohttp.ClientSession) -> None:
    port = gateway.http.https_port()
    async with client.get(f"{gateway.plain}/", allow_redirects=False,
                          headers={"Host": "cloudlink.local"}) as resp:
        assert resp.headers["Location"] == f"https://cloudlink.local:{port}/"
    async with client.get(f"{gateway.plain}/", allow_redirects=False,
                          headers={"Host": "evil.example"}) as resp:
        assert resp.status == 421  # never redirect to a name we do not own


async def test_api_errors_from_aiohttp_are_json(gateway: Gateway,
                                                client: aiohttp.ClientSession) -> None:
    csrf = await setup_admin(client, gateway)
    async with client.delete(f"{gateway.base}/api/v1/events",
                             headers={"X-CSRF-Token": csrf}) as resp:
        assert resp.status == 405
        assert resp.headers["Allow"] == "GET,HEAD" or "GET" in resp.headers["Allow"]
        assert (await resp.json())["message"]
    async with client.get(f"{gateway.base}/api/v1/nope") as resp:
        assert resp.status == 404
        assert (await resp.json())["code"] == "not_found"


async def test_reload_adds_host_names(gateway: Gateway, client: aiohttp.ClientSession) -> None:
    url = f"{gateway.base}/api/v1/session"
    async with client.get(url, headers={"Host": "gw1.example.test"}) as resp:
        assert resp.status == 421
    new = gateway.daemon.config.model_copy(update={"http": gateway.daemon.config.http.model_copy(
        update={"names": ["gw1.example.test"]})})
    await gateway.http.apply_config(new)
    async with client.get(url, headers={"Host": "gw1.example.test"}) as resp:
        assert resp.status == 200



async def test_login_gives_a_new_session_id(gateway: Gateway,
                                            client: aiohttp.ClientSession) -> None:
    """No session fixation: the id before login stops working after it."""
    await setup_admin(client, gateway)
    before = next(c.value for c in client.cookie_jar if c.key == SESSION_COOKIE)
    async with client.post(f"{gateway.base}/api/v1/session/login",
                           json={"password": PASSWORD}) as resp:
        assert resp.status == 200
    after = next(c.value for c in client.cookie_jar if c.key == SESSION_COOKIE)
    assert after != before
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as other:
        async with other.get(f"{gateway.base}/api/v1/overview",
                             headers={"Cookie": f"{SESSION_COOKIE}={before}"}) as resp:
            assert resp.status == 401
