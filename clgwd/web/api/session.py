"""Onboarding page API, section: Login, first-time setup, password change and logout;
the error messages in the technician's words (public: the login form needs them)."""

from __future__ import annotations

import hmac
import logging
from typing import Any, Final

from aiohttp import web

from clgwd.config import Secret
from clgwd.store import Action
from clgwd.web import auth, messages, models
from clgwd.web.api.common import (
    ADMIN_USER,
    Route,
    actor_of,
    parse_body,
    record,
    reply,
    services,
)
from clgwd.web.security import SESSION_COOKIE, SESSION_KEY

_LOGGER = logging.getLogger(__name__)


async def get_messages(request: web.Request) -> web.Response:
    return reply(messages.catalog())


async def get_session(request: web.Request) -> web.Response:
    svc = services(request)
    session = request.get(SESSION_KEY)
    body: dict[str, Any] = {
        "setup_required": not await svc.password_set(),
        "authenticated": session is not None,
    }
    locked = svc.throttle.locked_for(_client(request))
    if locked:  # the login form counts down (a reload keeps the countdown)
        body["locked_for"] = max(1, int(locked + 0.999))
    if session is not None:
        body.update(user=session.user, csrf_token=session.csrf)
    return reply(body)


def _client(request: web.Request) -> str:
    return request.remote or "unknown"


def _start_session(request: web.Request, status: int = 200) -> web.Response:
    """A fresh session id at every login (no fixation); the old one ends."""
    svc = services(request)
    svc.sessions.drop(request.cookies.get(SESSION_COOKIE))
    token, session = svc.sessions.create(ADMIN_USER)
    response = reply({"authenticated": True, "user": session.user,
                      "csrf_token": session.csrf, "setup_required": False}, status)
    response.set_cookie(SESSION_COOKIE, token, secure=True, httponly=True,
                        samesite="Strict", path="/")
    return response


async def post_setup(request: web.Request) -> web.Response:
    """First visit: prove physical access with the setup code, choose the password."""
    svc = services(request)
    body = await parse_body(request, models.SetupBody)
    async with svc.setup_lock:  # two first visits at once: only one sets the password
        if await svc.password_set():
            raise auth.Conflict("the admin password is already set; log in instead")
        svc.throttle.check(_client(request))
        expected = await auth.device_setup_code(svc.store.secrets)
        if not hmac.compare_digest(auth.normalize_code(body.setup_code).encode(),
                                   expected.encode()):
            svc.throttle.failed(_client(request))
            svc.logins.labels("setup", "failed").inc()
            raise auth.Unauthorized("wrong setup code; it is printed on the console and "
                                    "the label (clgwd setup-code)",
                                    retry_after=svc.throttle.locked_for(_client(request))
                                    or None)
        auth.check_password_rules(body.password)
        svc.throttle.succeeded(_client(request))
        async with svc.kdf_slots:
            hashed = await auth.hash_password(body.password)
        await svc.store.secrets.put(auth.ADMIN_HASH_SECRET, Secret(hashed))
        svc.mark_password_set()
        svc.logins.labels("setup", "ok").inc()
    await record(svc, "local:web:setup", Action.CREATE, "Admin password", ADMIN_USER)
    return _start_session(request, 201)


async def post_login(request: web.Request) -> web.Response:
    body = await parse_body(request, models.LoginBody)
    await _check_admin_password(request, body.password, "login", "wrong password")
    _LOGGER.info("Login to the onboarding page from %s", _client(request))
    return _start_session(request)


async def _check_admin_password(request: web.Request, password: str, kind: str,
                                wrong: str) -> None:
    """Verify the admin password under the login throttle: every wrong guess, at login
    or as the current password of a change, counts towards the same lockout."""
    svc = services(request)
    svc.throttle.check(_client(request))
    stored = await svc.store.secrets.get(auth.ADMIN_HASH_SECRET)
    if stored is None:
        raise auth.Conflict("no admin password yet; enter the setup code first")
    async with svc.kdf_slots:
        ok = await auth.verify_password(stored.reveal(), password)
    if not ok:
        svc.throttle.failed(_client(request))
        svc.logins.labels(kind, "failed").inc()
        _LOGGER.warning("Wrong admin password (%s) from %s", kind, _client(request))
        locked = svc.throttle.locked_for(_client(request))
        raise auth.Unauthorized(wrong, retry_after=locked or None)
    svc.throttle.succeeded(_client(request))
    svc.logins.labels(kind, "ok").inc()


async def post_password(request: web.Request) -> web.Response:
    """Change the admin password: the current one proves it is the admin at the
    keyboard (a session left open is not enough); every session ends and the caller
    gets a fresh one, so a stolen cookie dies with the old password."""
    svc = services(request)
    body = await parse_body(request, models.PasswordChange)
    await _check_admin_password(request, body.current_password, "password_change",
                                "current_password: wrong password")
    try:
        auth.check_password_rules(body.new_password)
    except auth.InvalidInput as err:
        raise auth.InvalidInput(f"new_password: {err.message}") from None
    if hmac.compare_digest(body.new_password.encode(), body.current_password.encode()):
        raise auth.InvalidInput("new_password: must differ from the current password")
    async with svc.kdf_slots:
        hashed = await auth.hash_password(body.new_password)
    actor = actor_of(request)
    await svc.store.secrets.put(auth.ADMIN_HASH_SECRET, Secret(hashed))
    svc.sessions.drop_all()
    await record(svc, actor, Action.EDIT, "Admin password", ADMIN_USER)
    _LOGGER.info("Admin password changed from %s; every other session ended",
                 _client(request))
    return _start_session(request)


async def post_logout(request: web.Request) -> web.Response:
    services(request).sessions.drop(request.cookies.get(SESSION_COOKIE))
    response = reply({"authenticated": False})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


ROUTES: Final = (
    Route("GET", "/api/v1/session", get_session, "Login state and the CSRF token"),
    Route("GET", "/api/v1/messages", get_messages,
          "What each error code means, in words for the technician (public)"),
    Route("POST", "/api/v1/session/setup", post_setup,
          "First visit: setup code and new admin password", models.SetupBody, ok_status=201),
    Route("POST", "/api/v1/session/login", post_login, "Log in", models.LoginBody),
    Route("POST", "/api/v1/session/logout", post_logout, "Log out"),
    Route("POST", "/api/v1/session/password", post_password,
          "Change the admin password (current + new); ends every other session",
          models.PasswordChange),
)
