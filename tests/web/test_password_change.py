"""Changing the admin password: current password, rules, CSRF, sessions, lockout."""

from __future__ import annotations

from typing import Any

import aiohttp

from clgwd.store import EventFilter
from clgwd.web import auth
from tests.web.conftest import PASSWORD, Gateway, setup_admin

NEW = "a brand new passphrase"
PATH = "/api/v1/session/password"


async def _change(client: aiohttp.ClientSession, gw: Gateway, csrf: str | None,
                  body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    headers = {"X-CSRF-Token": csrf} if csrf is not None else {}
    async with client.post(gw.base + PATH, json=body, headers=headers) as resp:
        return resp.status, await resp.json()


async def _login(gw: Gateway, password: str) -> int:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False),
                                     cookie_jar=aiohttp.CookieJar(unsafe=True)) as other:
        async with other.post(f"{gw.base}/api/v1/session/login",
                              json={"password": password}) as resp:
            return resp.status


async def test_change_rotates_the_session_and_ends_every_other_one(
        gateway: Gateway, client: aiohttp.ClientSession) -> None:
    """The new password logs in, the old one no longer does; another browser's session
    ends; the caller continues on a fresh session and CSRF token; history says who."""
    csrf = await setup_admin(client, gateway)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False),
                                     cookie_jar=aiohttp.CookieJar(unsafe=True)) as other:
        async with other.post(f"{gateway.base}/api/v1/session/login",
                              json={"password": PASSWORD}) as resp:
            assert resp.status == 200
        status, body = await _change(client, gateway, csrf,
                                     {"current_password": PASSWORD, "new_password": NEW})
        assert status == 200, body
        assert body["authenticated"] is True and body["csrf_token"] != csrf
        async with other.get(f"{gateway.base}/api/v1/overview") as resp:
            assert resp.status == 401  # the other session is gone
    async with client.get(f"{gateway.base}/api/v1/session") as resp:
        mine = await resp.json()
    assert mine["authenticated"] is True and mine["csrf_token"] == body["csrf_token"]
    async with client.put(f"{gateway.base}/api/v1/sync/schedule", json={"interval_minutes": 20},
                          headers={"X-CSRF-Token": csrf}) as resp:
        assert resp.status == 403  # the old CSRF token died with the old session
    assert await _login(gateway, PASSWORD) == 401
    assert await _login(gateway, NEW) == 200
    stored = await gateway.store.secrets.get(auth.ADMIN_HASH_SECRET)
    assert stored is not None and stored.reveal().startswith("$argon2id$")
    events = await gateway.store.history.query(EventFilter(asset="Admin password"))
    changed = [e for e in events if e.action.value == "Edit"]
    assert len(changed) == 1 and changed[0].actor == "local:web:admin"
    dumped = str([e.as_json() for e in events])
    assert NEW not in dumped and PASSWORD not in dumped


async def test_wrong_current_password_changes_nothing(
        gateway: Gateway, client: aiohttp.ClientSession) -> None:
    csrf = await setup_admin(client, gateway)
    status, body = await _change(client, gateway, csrf,
                                 {"current_password": "not the password", "new_password": NEW})
    assert status == 401 and body["code"] == "unauthorized"
    assert "current_password" in body["message"]
    assert await _login(gateway, PASSWORD) == 200
    async with client.get(f"{gateway.base}/api/v1/session") as resp:
        assert (await resp.json())["csrf_token"] == csrf  # still logged in, same session


async def test_weak_or_unchanged_new_password_is_refused_naming_the_field(
        gateway: Gateway, client: aiohttp.ClientSession) -> None:
    csrf = await setup_admin(client, gateway)
    for new, expect in (("short", "at least 10"), ("x" * 257, "new_password"),
                        (PASSWORD, "must differ")):
        status, body = await _change(client, gateway, csrf,
                                     {"current_password": PASSWORD, "new_password": new})
        assert status == 422 and body["code"] == "invalid_input", (new, body)
        assert "new_password" in body["message"] and expect in body["message"]
    status, body = await _change(client, gateway, csrf, {"current_password": PASSWORD})
    assert status == 422 and "new_password" in body["message"]
    assert await _login(gateway, PASSWORD) == 200


async def test_change_needs_a_session_and_the_csrf_token(
        gateway: Gateway, client: aiohttp.ClientSession) -> None:
    csrf = await setup_admin(client, gateway)
    body = {"current_password": PASSWORD, "new_password": NEW}
    status, answer = await _change(client, gateway, None, body)
    assert status == 403 and "X-CSRF-Token" in answer["message"]
    status, answer = await _change(client, gateway, "wrong" + csrf, body)
    assert status == 403
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as anon:
        async with anon.post(gateway.base + PATH, json=body) as resp:
            assert resp.status == 401
    assert await _login(gateway, PASSWORD) == 200


async def test_wrong_current_passwords_lock_out_like_login(
        gateway: Gateway, client: aiohttp.ClientSession) -> None:
    """A stolen session cannot guess the password through the change form: after
    FREE_FAILURES wrong guesses even the right current password gets 429, and the
    lockout is the login's (same client address)."""
    csrf = await setup_admin(client, gateway)
    statuses = []
    for _ in range(auth.FREE_FAILURES):
        status, _body = await _change(client, gateway, csrf,
                                      {"current_password": "guess 123456", "new_password": NEW})
        statuses.append(status)
    assert statuses == [401] * auth.FREE_FAILURES
    status, body = await _change(client, gateway, csrf,
                                 {"current_password": PASSWORD, "new_password": NEW})
    assert status == 429 and "try again" in body["message"]
    assert await _login(gateway, PASSWORD) == 429
    async with client.get(f"{gateway.plain}/metrics") as resp:
        text = await resp.text()
    assert 'clgwd_web_logins_total{kind="password_change",result="failed"} 5.0' in text
