"""Wires the onboarding page into the HTTP component: routes, guards, static assets."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware

from clgwd.commands import CommandRouter
from clgwd.config import ClgwdConfig
from clgwd.logbuffer import CONSOLE_ONLY, shared_buffer
from clgwd.metrics import Metrics, StatusSource
from clgwd.store import Store
from clgwd.web import auth
from clgwd.web.api import ROUTES, SERVICES, WebServices
from clgwd.web.openapi import build_openapi
from clgwd.web.security import HostPolicy, make_guards

_LOGGER = logging.getLogger(__name__)


class OnboardingApp:
    """State shared by the page's handlers: sessions, lockout, the Host policy."""

    def __init__(self, config: ClgwdConfig, statuses: StatusSource, store: Store,
                 commands: CommandRouter, *, metrics: Metrics,
                 https_port: Callable[[], int | None]) -> None:
        self._config = config
        self.sessions = auth.Sessions(config.http.session_idle_minutes * 60.0)
        self.policy = HostPolicy.build(config.http.names)
        self.recent_logs = shared_buffer()
        self.services = WebServices(router=commands, store=store, statuses=statuses,
                                    config=lambda: self._config, sessions=self.sessions,
                                    throttle=auth.Throttle(), recent_logs=self.recent_logs,
                                    logins=metrics.counter(
                                        "clgwd_web_logins_total",
                                        "Onboarding page setup and login attempts",
                                        ["kind", "result"]))
        self._https_port = https_port
        self._openapi = build_openapi(ROUTES)

    def middlewares(self) -> tuple[Middleware, list[Middleware]]:
        return make_guards(self.policy, self.sessions, self._https_port)

    def apply_config(self, config: ClgwdConfig) -> None:
        self._config = config
        self.policy.set_names(HostPolicy.build(config.http.names).names)
        self.sessions.idle_seconds = config.http.session_idle_minutes * 60.0

    def add_routes(self, app: web.Application, root: Path) -> None:
        """Register the API, the OpenAPI document and the assets (blocking: a thread)."""
        app[SERVICES] = self.services
        for route in ROUTES:
            app.router.add_route(route.method, route.path, route.handler)
        app.router.add_get("/api/v1/openapi.json", self._openapi_handler)
        index = root / "index.html"
        if not index.is_file():
            _LOGGER.error("Onboarding page assets are missing from %s (set %s); the API "
                          "works, the page does not", root, "CLGWD_WEB_ROOT")
            return

        async def _index(request: web.Request) -> web.FileResponse:
            return web.FileResponse(index)

        app.router.add_get("/", _index)
        app.router.add_static("/static/", root, follow_symlinks=False)

    async def _openapi_handler(self, request: web.Request) -> web.Response:
        return web.json_response(self._openapi)

    def setup_code_hint(self) -> str:
        """The console banner's setup-code line. Never the code itself: the banner goes
        to the journal, and the code is only logged console-only at start-up."""
        if self.services.password_set_known():
            return "not needed, the admin password is set"
        return "run `sudo clgwd setup-code` (needed once, on the first visit)"

    async def announce(self, fingerprint: str | None, tls: list[tuple[str, int]]) -> None:
        """Print what the technician needs on the console: URL, fingerprint, setup code."""
        for host, port in tls:
            _LOGGER.info("Onboarding page: https://%s%s/", host if ":" not in host
                         else f"[{host}]", "" if port == 443 else f":{port}")
        if fingerprint is not None:
            _LOGGER.info("HTTPS certificate SHA-256 fingerprint: %s", fingerprint)
        store = self.services.store.secrets
        code = await auth.device_setup_code(store)
        if not await self.services.password_set():
            _LOGGER.info("Setup code for the first visit: %s", code, extra=CONSOLE_ONLY)
