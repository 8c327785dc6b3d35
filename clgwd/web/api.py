"""The JSON API of the onboarding page: ``/api/v1/...``.

Every change the page makes goes through these handlers, and every capability owned by
another part goes through the command router, exactly as the cloud and the CLI reach it.
A part that is not in this build answers ``not_supported_yet`` (HTTP 501), which the
page shows as "not available yet"; nothing here invents data in its place.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import zoneinfo
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from aiohttp import web
from prometheus_client import Counter
from pydantic import BaseModel, ValidationError

from clgwd.commands import CommandContext, CommandRouter
from clgwd.config import ClgwdConfig, Secret
from clgwd.errors import ClgwdError, NotSupportedYet
from clgwd.metrics import StatusSource
from clgwd.sip.trace import pcap_path, trace_dir
from clgwd.store import Action, Event, EventFilter, Store, events_to_csv
from clgwd.web import auth, jsonbody, messages, models
from clgwd.web.bundle import build_support_bundle
from clgwd.web.catalog import PBX_TYPES, pbx_type
from clgwd.web.nextstep import OnboardingState, next_step
from clgwd.web.recentlogs import RecentLogs
from clgwd.web.security import SESSION_COOKIE, SESSION_KEY

_LOGGER = logging.getLogger(__name__)
SITE_SETTING: Final = "web.site"
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
    recent_logs: RecentLogs
    logins: Counter
    """``clgwd_web_logins_total{kind, result}``: setup and login attempts."""
    kdf_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(2))
    """argon2id takes 64 MiB per hash: at most two at once, whatever the login rate."""
    setup_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _password_set: bool = False
    _site: dict[str, Any] | None = None

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

    def remember_site(self, site: dict[str, Any]) -> None:
        self._site = site

    async def site(self) -> dict[str, Any] | None:
        """The site info; this part is its only writer, so a cache cannot go stale."""
        if self._site is None:
            self._site = await self.store.settings.get(SITE_SETTING)
        return self._site


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


def _svc(request: web.Request) -> WebServices:
    return request.app[SERVICES]


def _actor(request: web.Request) -> str:
    session = request.get(SESSION_KEY)
    return f"local:web:{session.user}" if session is not None else "local:web"


async def _body(request: web.Request, model: type[B]) -> B:
    """Parse and validate a JSON body; every failure is a 422 naming the field."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise auth.InvalidInput("request body too large")
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise auth.InvalidInput("request body too large")
    try:
        data = jsonbody.parse(raw)
    except jsonbody.BadBody as err:
        jsonbody.BAD_BODIES.note(_client(request), request.path, err)
        raise auth.InvalidInput(str(err)) from None
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise auth.InvalidInput(_describe(err)) from None


def _describe(err: ValidationError) -> str:
    parts = []
    for issue in err.errors()[:5]:
        where = ".".join(str(p) for p in issue["loc"]) or "body"
        parts.append(f"{where}: {issue['msg']}")
    return "; ".join(parts)


async def _call(request: web.Request, method: str, params: Mapping[str, Any]) -> Any:
    ctx = CommandContext(actor=_actor(request),
                         idempotency_key=request.headers.get("Idempotency-Key"))
    return await _svc(request).router.call(method, params, ctx)


async def _section(request: web.Request, method: str,
                   params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One part's answer for a composite page; a missing part says so."""
    try:
        return {"available": True, "data": await _call(request, method, params or {})}
    except NotSupportedYet as err:
        return {"available": False, "code": err.code, "message": err.message}
    except ClgwdError as err:
        return {"available": True, "error": {"code": err.code, "message": err.message}}
    except Exception:  # one broken part must not blank the whole overview
        _LOGGER.exception("Router method %s failed", method)
        return {"available": True, "error": {"code": "internal_error",
                                             "message": "internal error; see the gateway log"}}


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


# -- session ---------------------------------------------------------------------------


async def get_messages(request: web.Request) -> web.Response:
    return _json(messages.catalog())


async def get_session(request: web.Request) -> web.Response:
    svc = _svc(request)
    session = request.get(SESSION_KEY)
    body: dict[str, Any] = {
        "setup_required": not await svc.password_set(),
        "authenticated": session is not None,
    }
    if session is not None:
        body.update(user=session.user, csrf_token=session.csrf)
    return _json(body)


def _client(request: web.Request) -> str:
    return request.remote or "unknown"


def _start_session(request: web.Request, status: int = 200) -> web.Response:
    """A fresh session id at every login (no fixation); the old one ends."""
    svc = _svc(request)
    svc.sessions.drop(request.cookies.get(SESSION_COOKIE))
    token, session = svc.sessions.create(ADMIN_USER)
    response = _json({"authenticated": True, "user": session.user,
                      "csrf_token": session.csrf, "setup_required": False}, status)
    response.set_cookie(SESSION_COOKIE, token, secure=True, httponly=True,
                        samesite="Strict", path="/")
    return response


async def post_setup(request: web.Request) -> web.Response:
    """First visit: prove physical access with the setup code, choose the password."""
    svc = _svc(request)
    body = await _body(request, models.SetupBody)
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
                                    "the label (clgwd setup-code)")
        auth.check_password_rules(body.password)
        svc.throttle.succeeded(_client(request))
        async with svc.kdf_slots:
            hashed = await auth.hash_password(body.password)
        await svc.store.secrets.put(auth.ADMIN_HASH_SECRET, Secret(hashed))
        svc.mark_password_set()
        svc.logins.labels("setup", "ok").inc()
    await _record(svc, "local:web:setup", Action.CREATE, "Admin password", ADMIN_USER)
    return _start_session(request, 201)


async def post_login(request: web.Request) -> web.Response:
    body = await _body(request, models.LoginBody)
    await _check_admin_password(request, body.password, "login", "wrong password")
    _LOGGER.info("Login to the onboarding page from %s", _client(request))
    return _start_session(request)


async def _check_admin_password(request: web.Request, password: str, kind: str,
                                wrong: str) -> None:
    """Verify the admin password under the login throttle: every wrong guess, at login
    or as the current password of a change, counts towards the same lockout."""
    svc = _svc(request)
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
        raise auth.Unauthorized(wrong)
    svc.throttle.succeeded(_client(request))
    svc.logins.labels(kind, "ok").inc()


async def post_password(request: web.Request) -> web.Response:
    """Change the admin password: the current one proves it is the admin at the
    keyboard (a session left open is not enough); every session ends and the caller
    gets a fresh one, so a stolen cookie dies with the old password."""
    svc = _svc(request)
    body = await _body(request, models.PasswordChange)
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
    actor = _actor(request)
    await svc.store.secrets.put(auth.ADMIN_HASH_SECRET, Secret(hashed))
    svc.sessions.drop_all()
    await _record(svc, actor, Action.EDIT, "Admin password", ADMIN_USER)
    _LOGGER.info("Admin password changed from %s; every other session ended",
                 _client(request))
    return _start_session(request)


async def post_logout(request: web.Request) -> web.Response:
    _svc(request).sessions.drop(request.cookies.get(SESSION_COOKIE))
    response = _json({"authenticated": False})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


# -- gateway: site info and network ----------------------------------------------------


async def get_site(request: web.Request) -> web.Response:
    site = await _svc(request).site()
    return _json({"configured": site is not None, "site": site})


async def put_site(request: web.Request) -> web.Response:
    svc = _svc(request)
    new = (await _body(request, models.SiteInfo)).model_dump()
    old = await svc.site() or {}
    changed = sorted(k for k in new if old.get(k) != new[k])
    if changed:
        async with svc.store.db.transaction() as tx:
            await svc.store.settings.set_in(tx, SITE_SETTING, new)
            await svc.store.history.record(tx, Event(
                actor=_actor(request), action=Action.EDIT if old else Action.CREATE,
                asset="Site", subject=new["site_name"], properties_changed=changed,
                core={k: new[k] for k in changed}))
            tx.after_commit(lambda: svc.remember_site(new))
    return _json({"configured": True, "site": new, "changed": changed})


async def get_network(request: web.Request) -> web.Response:
    return _json(await _call(request, "network.get", {}))


async def post_network_apply(request: web.Request) -> web.Response:
    body = await _body(request, models.NetworkApply)
    return _json(await _call(request, "network.apply", body.model_dump()))


async def post_network_confirm(request: web.Request) -> web.Response:
    body = await _body(request, models.NetworkConfirm)
    return _json(await _call(request, "network.confirm", body.model_dump()))


async def post_network_preflight(request: web.Request) -> web.Response:
    """The network part's pre-flight report; checks with no target are not in it."""
    await _body(request, models.Empty)
    return _json(await _call(request, "network.preflight", {}))


# -- cloud -----------------------------------------------------------------------------


async def get_cloud(request: web.Request) -> web.Response:
    return _json(_no_secrets(await _call(request, "cloud.status", {})))


async def post_cloud_enroll(request: web.Request) -> web.Response:
    body = await _body(request, models.CloudEnroll)
    return _json(_no_secrets(await _call(request, "cloud.enroll", body.model_dump())))


async def get_cloud_proxy(request: web.Request) -> web.Response:
    return _json(_no_secrets(await _call(request, "cloud.proxy.get", {})))


async def put_cloud_proxy(request: web.Request) -> web.Response:
    body = await _body(request, models.CloudProxy)
    return _json(_no_secrets(await _call(request, "cloud.proxy.set", body.model_dump())))


# -- PBX and sync ----------------------------------------------------------------------


async def get_pbx_types(request: web.Request) -> web.Response:
    return _json({"types": list(PBX_TYPES)})


async def get_pbx(request: web.Request) -> web.Response:
    return _json(_no_secrets(await _call(request, "pbx.get", {})))


async def put_pbx(request: web.Request) -> web.Response:
    body = await _body(request, models.PbxSettings)
    kind = pbx_type(body.type)
    if kind is None:
        raise auth.InvalidInput(f"type: unknown PBX type {body.type!r}")
    if not kind["available"]:
        raise NotSupportedYet(f"{kind['label']} is not available in this gateway version yet")
    if kind["network"] and (body.address is None or body.port is None):
        raise auth.InvalidInput(f"address: {kind['label']} needs the PBX address and port")
    allowed = {f["name"] for f in kind["fields"]}
    missing = [f["name"] for f in kind["fields"] if f["required"] and not body.options.get(
        f["name"])]
    if set(body.options) - allowed or missing:
        raise auth.InvalidInput(f"options: {kind['label']} needs {sorted(allowed) or 'none'}"
                                + (f"; missing {missing}" if missing else ""))
    return _json(_no_secrets(await _call(request, "pbx.set", body.model_dump())))


async def post_pbx_test(request: web.Request) -> web.Response:
    return _json(await _call(request, "pbx.test", {}))


async def post_sync_now(request: web.Request) -> web.Response:
    return _json(await _call(request, "sync.now", {}), 202)


async def get_sync_schedule(request: web.Request) -> web.Response:
    return _json(await _call(request, "sync.schedule.get", {}))


async def put_sync_schedule(request: web.Request) -> web.Response:
    body = await _body(request, models.SyncSchedule)
    return _json(await _call(request, "sync.schedule.set", body.model_dump()))


async def get_sync_preview(request: web.Request) -> web.Response:
    return _json(await _call(request, "sync.preview", {}))


def _no_secrets(data: Any) -> Any:
    """Belt and braces: drop any password-like key a part might return."""
    if isinstance(data, dict):
        return {k: _no_secrets(v) for k, v in data.items()
                if not any(w in k.lower() for w in ("password", "secret", "token"))
                or k.lower().endswith("_set")}
    if isinstance(data, list):
        return [_no_secrets(v) for v in data]
    return data


# -- overview, deployment, tunnels, events ---------------------------------------------


async def get_overview(request: web.Request) -> web.Response:
    svc = _svc(request)
    sections = {name: await _section(request, method) for name, method in (
        ("cloud", "cloud.status"), ("pbx", "pbx.get"), ("sync", "sync.schedule.get"),
        ("inventory", "inventory.report"), ("tunnels", "tunnel.list"))}
    alerts = [{"code": a.code, "severity": a.severity.value, "message": a.message,
               "since": a.since} for a in await svc.store.alerts.active()]
    site = await svc.site()
    state = derive_state(site is not None, sections, alerts)
    return _json({
        "next": next_step(state).as_json(), "alerts": alerts, "site": site,
        "components": {n: s.as_json() for n, s in svc.statuses().items()},
        **{k: _no_secrets(v) for k, v in sections.items()},
    })


def _data(section: Mapping[str, Any]) -> Mapping[str, Any] | None:
    data = section.get("data")
    return data if section.get("available") and isinstance(data, Mapping) else None


def derive_state(site_configured: bool, sections: Mapping[str, Mapping[str, Any]],
                 alerts: list[dict[str, Any]]) -> OnboardingState:
    """Map the parts' answers (documented in docs/api.md) to the onboarding inputs."""
    cloud, pbx = _data(sections["cloud"]), _data(sections["pbx"])
    sync, inventory = _data(sections["sync"]), _data(sections["inventory"])
    last = sync.get("last_sync") if sync else None
    return OnboardingState(
        site_configured=site_configured,
        cloud_enrolled=bool(cloud.get("enrolled")) if cloud else None,
        cloud_connected=cloud.get("link") == "connected" if cloud else None,
        pbx_configured=bool(pbx.get("configured")) if pbx else None,
        pbx_connected=bool(pbx.get("connected")) if pbx else None,
        last_sync_ok=(bool(last.get("ok")) if isinstance(last, Mapping) else False)
        if sync else None,
        synced_users=int(inventory.get("users", 0)) if inventory else None,
        critical_alerts=tuple(a["message"] for a in alerts if a["severity"] == "critical"),
    )


async def get_deployment(request: web.Request) -> web.Response:
    cloud = await _section(request, "cloud.status")
    inventory = await _section(request, "inventory.report")
    cloud_data, inv = _data(cloud), _data(inventory)
    return _json({
        "cloud": cloud, "inventory": inventory,
        "account_id": cloud_data.get("account_id") if cloud_data else None,
        "synced_users": inv.get("users") if inv else None,
        "ready": bool(cloud_data and cloud_data.get("enrolled") and inv and inv.get("users")),
    })


async def get_tunnels(request: web.Request) -> web.Response:
    return _json(await _call(request, "tunnel.list", {}))


async def post_tunnels_start(request: web.Request) -> web.Response:
    body = await _body(request, models.TunnelAction)
    return _json(await _call(request, "tunnel.start", body.model_dump(exclude_defaults=True)))


async def post_tunnels_stop(request: web.Request) -> web.Response:
    body = await _body(request, models.TunnelAction)
    if body.expiry is not None:
        raise auth.InvalidInput("expiry: only a start takes an expiry")
    return _json(await _call(request, "tunnel.stop", body.model_dump(exclude_defaults=True)))


async def get_inventory(request: web.Request) -> web.Response:
    return _json(await _call(request, "inventory.report", {}))


def _event_filter(request: web.Request) -> EventFilter:
    q = request.query
    try:
        action = Action(q["action"]) if q.get("action") else None
        since = float(q["since"]) if q.get("since") else None
        until = float(q["until"]) if q.get("until") else None
        limit = int(q.get("limit", "200"))
    except ValueError:
        raise auth.InvalidInput("action must be one of " + ", ".join(a.value for a in Action)
                                + "; since/until are Unix times; limit is 1-1000") from None
    if not 1 <= limit <= 1000:
        raise auth.InvalidInput("limit must be 1-1000")
    asset = q.get("asset") or None
    if asset is not None and len(asset) > 100:
        raise auth.InvalidInput("asset must be at most 100 characters")
    return EventFilter(asset=asset, action=action, since=since, until=until, limit=limit)


async def get_events(request: web.Request) -> web.Response:
    events = await _svc(request).store.history.query(_event_filter(request))
    return _json({"events": [e.as_json() for e in events]})


async def get_events_csv(request: web.Request) -> web.Response:
    events = await _svc(request).store.history.query(_event_filter(request))
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return web.Response(text=events_to_csv(events), content_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="clgwd-events-{stamp}.csv"'})


# -- advanced --------------------------------------------------------------------------


async def get_update_schedule(request: web.Request) -> web.Response:
    return _json(await _call(request, "update.schedule.get", {}))


def _known_timezone(name: str) -> bool:
    """Blocking (reads tzdata): call in a thread."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


async def put_update_schedule(request: web.Request) -> web.Response:
    body = await _body(request, models.UpdateSchedule)
    if not await asyncio.to_thread(_known_timezone, body.timezone):
        raise auth.InvalidInput(f"timezone: unknown time zone {body.timezone!r}; use a name "
                                "such as America/Toronto or UTC")
    return _json(await _call(request, "update.schedule", body.model_dump()))


async def get_support_bundle(request: web.Request) -> web.StreamResponse:
    svc = _svc(request)
    logs = await _section(request, "logs.collect", {"since_hours": 24})
    trace = await _section(request, "trace.status")
    data = await build_support_bundle(svc.store, svc.statuses(), svc.config(), logs,
                                      svc.recent_logs.lines(), trace=trace)
    await _record(svc, _actor(request), Action.OTHER, "Support bundle", "downloaded")
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return web.Response(body=data, content_type="application/gzip", headers={
        "Content-Disposition": f'attachment; filename="clgwd-support-{stamp}.tar.gz"'})


async def post_trace(request: web.Request) -> web.Response:
    body = await _body(request, models.TraceCalls)
    return _json(await _call(request, "trace.calls", body.model_dump()), 202)


async def get_trace(request: web.Request) -> web.Response:
    return _json(await _call(request, "trace.status", {}))


async def post_trace_stop(request: web.Request) -> web.Response:
    await _body(request, models.Empty)
    return _json(await _call(request, "trace.stop", {}))


async def get_trace_download(request: web.Request) -> web.StreamResponse:
    """One finished capture file. It can hold customer data: only a logged-in admin gets
    it, the download is recorded, and the file of a running trace is refused (it is
    still being written)."""
    svc = _svc(request)
    name = request.query.get("file", "")
    status = await _call(request, "trace.status", {})
    current = status.get("current") or {}
    if any(name == f"trace-{current.get('id')}-{i}.pcap" for i in current.get("interfaces", ())):
        raise auth.Conflict("file: this call trace is still running; stop it first")
    path = await asyncio.to_thread(pcap_path, trace_dir(svc.config()), name)
    await _record(svc, _actor(request), Action.OTHER, "Call trace", f"downloaded {name}")
    return web.FileResponse(path, headers={
        "Content-Type": "application/vnd.tcpdump.pcap",
        "Content-Disposition": f'attachment; filename="{name}"'})


async def post_reboot(request: web.Request) -> web.Response:
    await _body(request, models.Empty)
    return _json(await _call(request, "system.reboot", {}), 202)


async def post_factory_reset(request: web.Request) -> web.Response:
    body = await _body(request, models.FactoryReset)
    if body.confirm != "revert":
        raise auth.InvalidInput("confirm: type revert to reset the gateway to factory "
                                "defaults")
    return _json(await _call(request, "system.factory_reset", {"confirm": body.confirm}),
                 202)


async def _record(svc: WebServices, actor: str, action: Action, asset: str,
                  subject: str) -> None:
    async with svc.store.db.transaction() as tx:
        await svc.store.history.record(tx, Event(actor=actor, action=action, asset=asset,
                                                 subject=subject))


_EVENT_QUERY: Final = (
    ("asset", {"type": "string", "maxLength": 100}),
    ("action", {"type": "string", "enum": [a.value for a in Action]}),
    ("since", {"type": "number"}), ("until", {"type": "number"}),
    ("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
)

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
    Route("GET", "/api/v1/site", get_site, "Gateway information (site)"),
    Route("PUT", "/api/v1/site", put_site, "Save the gateway information", models.SiteInfo),
    Route("GET", "/api/v1/network", get_network, "Ethernet ports",
          router_methods=("network.get",)),
    Route("POST", "/api/v1/network/apply", post_network_apply,
          "Apply port settings with commit-confirm", models.NetworkApply,
          router_methods=("network.apply",)),
    Route("POST", "/api/v1/network/confirm", post_network_confirm,
          "Confirm new port settings from the new address", models.NetworkConfirm,
          router_methods=("network.confirm",)),
    Route("POST", "/api/v1/network/preflight", post_network_preflight,
          "Run the pre-flight checks (DNS, NTP, cloud, STUN, SIP-TLS, PBX, proxy)",
          models.Empty, router_methods=("network.preflight",)),
    Route("GET", "/api/v1/cloud", get_cloud, "Cloud link state",
          router_methods=("cloud.status",)),
    Route("POST", "/api/v1/cloud/enroll", post_cloud_enroll, "Enroll with the cloud",
          models.CloudEnroll, router_methods=("cloud.enroll",)),
    Route("GET", "/api/v1/cloud/proxy", get_cloud_proxy, "The HTTP proxy to the cloud (no "
          "password)", router_methods=("cloud.proxy.get",)),
    Route("PUT", "/api/v1/cloud/proxy", put_cloud_proxy, "Set the HTTP proxy to the cloud",
          models.CloudProxy, router_methods=("cloud.proxy.set",)),
    Route("GET", "/api/v1/pbx/types", get_pbx_types, "PBX types and their fields"),
    Route("GET", "/api/v1/pbx", get_pbx, "PBX settings (no secrets)",
          router_methods=("pbx.get",)),
    Route("PUT", "/api/v1/pbx", put_pbx, "Save PBX settings", models.PbxSettings,
          router_methods=("pbx.set",)),
    Route("POST", "/api/v1/pbx/test", post_pbx_test, "Test the PBX connection",
          router_methods=("pbx.test",)),
    Route("POST", "/api/v1/sync/now", post_sync_now, "Sync now", router_methods=("sync.now",),
          ok_status=202),
    Route("GET", "/api/v1/sync/schedule", get_sync_schedule, "Sync schedule, last/next sync",
          router_methods=("sync.schedule.get",)),
    Route("PUT", "/api/v1/sync/schedule", put_sync_schedule, "Set the sync interval",
          models.SyncSchedule, router_methods=("sync.schedule.set",)),
    Route("GET", "/api/v1/sync/preview", get_sync_preview, "Changes the next sync makes",
          router_methods=("sync.preview",)),
    Route("GET", "/api/v1/overview", get_overview, "Next step, alerts and every part's state",
          router_methods=("cloud.status", "pbx.get", "sync.schedule.get",
                          "inventory.report", "tunnel.list")),
    Route("GET", "/api/v1/deployment", get_deployment, "Ready-to-deploy summary",
          router_methods=("cloud.status", "inventory.report")),
    Route("GET", "/api/v1/tunnels", get_tunnels, "Tunnels", router_methods=("tunnel.list",)),
    Route("POST", "/api/v1/tunnels/start", post_tunnels_start, "Start tunnels",
          models.TunnelAction, router_methods=("tunnel.start",)),
    Route("POST", "/api/v1/tunnels/stop", post_tunnels_stop, "Stop tunnels",
          models.TunnelAction, router_methods=("tunnel.stop",)),
    Route("GET", "/api/v1/inventory", get_inventory, "Inventory summary",
          router_methods=("inventory.report",)),
    Route("GET", "/api/v1/events", get_events, "Event history", query=_EVENT_QUERY),
    Route("GET", "/api/v1/events.csv", get_events_csv, "Event history as CSV",
          query=_EVENT_QUERY, content="text/csv"),
    Route("GET", "/api/v1/update/schedule", get_update_schedule, "Automatic update schedule",
          router_methods=("update.schedule.get",)),
    Route("PUT", "/api/v1/update/schedule", put_update_schedule, "Set the update schedule",
          models.UpdateSchedule, router_methods=("update.schedule",)),
    Route("GET", "/api/v1/support-bundle", get_support_bundle,
          "Support bundle (tar.gz, secrets redacted)",
          router_methods=("logs.collect", "trace.status"),
          content="application/gzip"),
    Route("POST", "/api/v1/trace", post_trace, "Trace calls for a while", models.TraceCalls,
          router_methods=("trace.calls",), ok_status=202),
    Route("GET", "/api/v1/trace", get_trace, "Call trace: running state and kept captures",
          router_methods=("trace.status",)),
    Route("POST", "/api/v1/trace/stop", post_trace_stop, "Stop the running call trace",
          models.Empty, router_methods=("trace.stop",)),
    Route("GET", "/api/v1/trace/download", get_trace_download,
          "Download a finished call trace (pcap; may hold customer data)",
          query=(("file", {"type": "string", "maxLength": 80}),),
          router_methods=("trace.status",), content="application/vnd.tcpdump.pcap"),
    Route("POST", "/api/v1/system/reboot", post_reboot, "Reboot the gateway", models.Empty,
          router_methods=("system.reboot",), ok_status=202),
    Route("POST", "/api/v1/system/factory-reset", post_factory_reset,
          "Factory reset (type revert)", models.FactoryReset,
          router_methods=("system.factory_reset",), ok_status=202),
)
