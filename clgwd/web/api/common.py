"""What every section of the page's API shares: the services the handlers may use, the
route record, request parsing and the call into the command router.

Every change the page makes goes through the section modules' handlers, and every
capability owned by another part goes through the command router, exactly as the cloud
and the CLI reach it. A part that is not in this build answers ``not_supported_yet``
(HTTP 501), which the page shows as "not available yet"; nothing invents data in its
place.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from aiohttp import web
from prometheus_client import Counter
from pydantic import BaseModel, ValidationError

from clgwd.commands import CommandContext, CommandRouter
from clgwd.config import ClgwdConfig
from clgwd.errors import ClgwdError, NotSupportedYet
from clgwd.logbuffer import LogBuffer
from clgwd.metrics import StatusSource
from clgwd.store import Action, Event, Store
from clgwd.web import auth, jsonbody
from clgwd.web.security import SESSION_KEY

_LOGGER = logging.getLogger(__name__)
ADMIN_USER: Final = "admin"
MAX_BODY: Final = 64 * 1024
B = TypeVar("B", bound=BaseModel)


@dataclass
class WebServices:
    """What the handlers may use: the router for other parts, the store for our own."""

    router: CommandRouter
    store: Store
    statuses: StatusSource
    config: Callable[[], ClgwdConfig]
    sessions: auth.Sessions
    throttle: auth.Throttle
    recent_logs: LogBuffer
    logins: Counter
    """``clgwd_web_logins_total{kind, result}``: setup and login attempts."""
    kdf_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(2))
    """argon2id takes 64 MiB per hash: at most two at once, whatever the login rate."""
    setup_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _password_set: bool = False

    async def password_set(self) -> bool:
        """Cached once true: only a factory reset (which restarts the daemon on an
        empty state dir) unsets it, and every request of the page asks."""
        if not self._password_set:
            self._password_set = await self.store.secrets.is_set(auth.ADMIN_HASH_SECRET)
        return self._password_set

    def password_set_known(self) -> bool:
        """Whether the admin password is known to be set, without asking the store
        (for synchronous callers such as the console banner)."""
        return self._password_set

    def mark_password_set(self) -> None:
        self._password_set = True



SERVICES: Final = web.AppKey("clgwd_web_services", WebServices)
RouteHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: RouteHandler
    summary: str
    body: type[BaseModel] | None = None
    query: tuple[tuple[str, dict[str, Any]], ...] = ()
    router_methods: tuple[str, ...] = ()
    content: str = "application/json"
    ok_status: int = 200


def services(request: web.Request) -> WebServices:
    return request.app[SERVICES]


def actor_of(request: web.Request) -> str:
    session = request.get(SESSION_KEY)
    return f"local:web:{session.user}" if session is not None else "local:web"


async def parse_body(request: web.Request, model: type[B]) -> B:
    """Parse and validate a JSON body; every failure is a 422 naming the field."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise auth.InvalidInput("request body too large")
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise auth.InvalidInput("request body too large")
    try:
        data = jsonbody.parse(raw)
    except jsonbody.BadBody as err:
        jsonbody.BAD_BODIES.note(request.remote or "unknown", request.path, err)
        raise auth.InvalidInput(str(err)) from None
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise auth.InvalidInput(describe(err)) from None


def describe(err: ValidationError) -> str:
    parts = []
    for issue in err.errors()[:5]:
        where = ".".join(str(p) for p in issue["loc"]) or "body"
        parts.append(f"{where}: {issue['msg']}")
    return "; ".join(parts)


async def call(request: web.Request, method: str, params: Mapping[str, Any]) -> Any:
    ctx = CommandContext(actor=actor_of(request),
                         idempotency_key=request.headers.get("Idempotency-Key"))
    return await services(request).router.call(method, params, ctx)


async def section(request: web.Request, method: str,
                   params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One part's answer for a composite page; a missing part says so."""
    try:
        return {"available": True, "data": await call(request, method, params or {})}
    except NotSupportedYet as err:
        return {"available": False, "code": err.code, "message": err.message}
    except ClgwdError as err:
        return {"available": True, "error": {"code": err.code, "message": err.message}}
    except Exception:  # one broken part must not blank the whole overview
        _LOGGER.exception("Router method %s failed", method)
        return {"available": True, "error": {"code": "internal_error",
                                             "message": "internal error; see the gateway log"}}


def reply(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


async def record(svc: WebServices, actor: str, action: Action, asset: str,
                  subject: str) -> None:
    async with svc.store.db.transaction() as tx:
        await svc.store.history.record(tx, Event(actor=actor, action=action, asset=asset,
                                                 subject=subject))


def no_secrets(data: Any) -> Any:
    """Belt and braces: drop any password-like key a part might return."""
    if isinstance(data, dict):
        return {k: no_secrets(v) for k, v in data.items()
                if not any(w in k.lower() for w in ("password", "secret", "token"))
                or k.lower().endswith("_set")}
    if isinstance(data, list):
        return [no_secrets(v) for v in data]
    return data
