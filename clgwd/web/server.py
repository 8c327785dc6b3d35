"""The LAN-facing web listeners, run with aiohttp's ``AppRunner``.

Plain HTTP (``http.listen``) answers ``/api/v1/health`` and ``/metrics`` and redirects
everything else to HTTPS; HTTPS (``http.tls_listen``) serves the onboarding page and its
API with the device's self-signed certificate. Every address is bound in ``__aenter__``
so the daemon tells systemd it is ready only once the sockets really accept
connections, and a port that is already taken is reported by name.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import ssl
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final, Self

from aiohttp import web

from clgwd import __version__
from clgwd.commands import CommandRouter
from clgwd.component import HEALTHY_STATES, ComponentState, StatusTracker
from clgwd.config import ClgwdConfig
from clgwd.config.models import ListenAddress
from clgwd.errors import ClgwdError, StartupError
from clgwd.metrics import CONTENT_TYPE, Metrics, StatusSource
from clgwd.store import Store
from clgwd.web.messages import human

_LOGGER = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
WEB_ROOT_ENV: Final = "CLGWD_WEB_ROOT"


def describe_bind_error(host: str, port: int, err: OSError) -> str:
    """Say which address failed and why, in words an operator can act on."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if err.errno == errno.EADDRINUSE:
        return f"cannot listen on {where}: port {port} is already in use by another program"
    if err.errno == errno.EACCES:
        return (f"cannot listen on {where}: permission denied (ports below 1024 need "
                "CAP_NET_BIND_SERVICE)")
    if err.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {where}: no interface has address {host}"
    return f"cannot listen on {where}: {err.strerror or err}"


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Expected errors become ``{"code", "message", "title", "next"}`` (the technical
    message plus the technician's sentence, ``clgwd.web.messages``); nothing leaks a
    traceback."""
    try:
        return await handler(request)
    except ClgwdError as err:
        body: dict[str, object] = {"code": err.code, "message": err.message,
                                   **human(err.code)}
        retry_after = getattr(err, "retry_after", None)
        if retry_after is not None:  # the login form counts it down
            body["retry_after"] = retry_after
        response = web.json_response(body, status=err.http_status)
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response
    except web.HTTPException:
        raise
    except Exception:
        _LOGGER.exception("Unexpected error serving %s %s", request.method, request.path)
        return web.json_response({"code": "internal_error",
                                  "message": "internal error; see the gateway log",
                                  **human("internal_error")}, status=500)


def web_root() -> Path:
    """Where the page's assets are: $CLGWD_WEB_ROOT, the source tree, or share/clgwd/web."""
    override = os.environ.get(WEB_ROOT_ENV)
    if override:
        return Path(override)
    source = Path(__file__).resolve().parents[2] / "web"
    if (source / "index.html").is_file():
        return source
    return Path(sys.prefix) / "share" / "clgwd" / "web"


SiteKey = tuple[ListenAddress, bool]


class HttpServer:
    """Component ``http``: the plain and HTTPS listeners on the configured addresses.

    Without a store and router (some lifecycle tests) it serves health and metrics only.
    """

    name = "http"

    def __init__(self, config: ClgwdConfig, statuses: StatusSource, metrics: Metrics,
                 store: Store | None = None, commands: CommandRouter | None = None) -> None:
        self._config = config
        self._statuses = statuses
        self._metrics = metrics
        self.tracker = StatusTracker(self.name)
        self._onboarding = None if store is None or commands is None else (store, commands)
        self._ssl: ssl.SSLContext | None = None
        self.fingerprint: str | None = None
        self.app = self._build_app()
        self._runner: web.AppRunner | None = None
        self._sites: dict[SiteKey, web.TCPSite] = {}

    def _build_app(self) -> web.Application:
        if self._onboarding is None:
            app = web.Application(middlewares=[error_middleware])
        else:
            from clgwd.web.app import OnboardingApp  # noqa: PLC0415 - optional part

            self.onboarding = OnboardingApp(self._config, self._statuses, *self._onboarding,
                                            metrics=self._metrics, https_port=self.https_port)
            headers, guards = self.onboarding.middlewares()
            app = web.Application(middlewares=[headers, error_middleware, *guards],
                                  client_max_size=256 * 1024)
        app.router.add_get("/api/v1/health", self._health)
        app.router.add_get("/metrics", self._metrics_handler)
        return app

    def setup_code_hint(self) -> str | None:
        """The console banner's setup-code line; None without the onboarding page."""
        return None if self._onboarding is None else self.onboarding.setup_code_hint()

    @property
    def bound(self) -> list[tuple[str, int]]:
        """The (host, port) pairs really bound, with the kernel's port for port 0."""
        if self._runner is None:
            return []
        return [(addr[0], addr[1]) for addr in self._runner.addresses]

    @property
    def bound_tls(self) -> list[tuple[str, int]]:
        """The HTTPS (host, port) pairs really bound."""
        return [pair for key, site in self._sites.items() if key[1]
                for pair in _site_addresses(site)]

    def https_port(self) -> int | None:
        tls = self.bound_tls
        return tls[0][1] if tls else None

    async def __aenter__(self) -> Self:
        self.tracker.set(ComponentState.STARTING)
        if self._onboarding is not None:
            # Resolving the asset dir touches the disk: not on the loop.
            await asyncio.to_thread(lambda: self.onboarding.add_routes(self.app, web_root()))
            if self._config.http.tls_listen:
                await self._load_certificate(self._config)
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False,
                                     shutdown_timeout=2.0)
        await self._runner.setup()
        try:
            for key in self._wanted(self._config):
                await self._bind(key)
        except BaseException:
            await self._runner.cleanup()
            raise
        if self._onboarding is not None:
            self.onboarding.recent_logs.attach()
            await self.onboarding.announce(self.fingerprint, self.bound_tls)
        self.tracker.set(ComponentState.RUNNING, self._describe())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.tracker.set(ComponentState.STOPPING)
        if self._runner is not None:
            await self._runner.cleanup()
        if self._onboarding is not None:
            self.onboarding.recent_logs.detach()
        self._sites.clear()
        self.tracker.set(ComponentState.STOPPED)

    async def run(self) -> None:
        """aiohttp serves from its own callbacks; nothing to loop over."""

    def _wanted(self, config: ClgwdConfig) -> list[SiteKey]:
        plain: list[SiteKey] = [(a, False) for a in config.http.listen]
        if self._onboarding is None or self._ssl is None:
            return plain
        return plain + [(a, True) for a in config.http.tls_listen]

    async def apply_config(self, config: ClgwdConfig) -> None:
        """Bind new addresses first, then release old ones, so a bad address changes nothing."""
        if self._onboarding is not None and config.http.tls_listen:
            await self._load_certificate(config)
        wanted = self._wanted(config)
        added = [k for k in wanted if k not in self._sites]
        try:
            for key in added:
                await self._bind(key)
        except ClgwdError:
            for key in added:
                site = self._sites.pop(key, None)
                if site is not None:
                    await site.stop()
            raise
        for key in [k for k in self._sites if k not in wanted]:
            await self._sites.pop(key).stop()
        self._config = config
        if self._onboarding is not None:
            self.onboarding.apply_config(config)
        self.tracker.set(ComponentState.RUNNING, self._describe())

    async def _load_certificate(self, config: ClgwdConfig) -> None:
        """Make or load the certificate for ``config``'s names and addresses.

        On reload the same SSL context is loaded again, so listeners that stay bound
        serve a remade certificate from their next handshake on.
        """
        from clgwd.web.tls import ensure_certificate  # noqa: PLC0415 - optional part

        ips = [a.host for a in config.http.tls_listen]
        cert = await asyncio.to_thread(ensure_certificate, config.state.dir,
                                       config.http.names, ips)
        if cert.fingerprint == self.fingerprint:
            return
        context = self._ssl or ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        await asyncio.to_thread(context.load_cert_chain, cert.cert_path, cert.key_path)
        if self.fingerprint is not None:
            _LOGGER.info("HTTPS certificate remade; SHA-256 fingerprint: %s", cert.fingerprint)
        self._ssl, self.fingerprint = context, cert.fingerprint

    async def _bind(self, key: SiteKey) -> None:
        assert self._runner is not None
        address, tls = key
        site = web.TCPSite(self._runner, address.host, address.port, reuse_address=True,
                           ssl_context=self._ssl if tls else None)
        try:
            await site.start()
        except OSError as err:
            raise StartupError(describe_bind_error(address.host, address.port, err)) from err
        self._sites[key] = site
        _LOGGER.info("%s listening on %s", "HTTPS" if tls else "HTTP", site.name)

    def _describe(self) -> str:
        return ", ".join(f"{h}:{p}" for h, p in self.bound)

    async def _health(self, request: web.Request) -> web.Response:
        statuses = self._statuses()
        healthy = all(s.state in HEALTHY_STATES for s in statuses.values())
        body = {"status": "ok" if healthy else "failing", "version": __version__,
                "components": {name: s.state.value for name, s in statuses.items()}}
        return web.json_response(body, status=200 if healthy else 503)

    async def _metrics_handler(self, request: web.Request) -> web.Response:
        return web.Response(body=self._metrics.render(), headers={"Content-Type": CONTENT_TYPE})


def _site_addresses(site: web.TCPSite) -> list[tuple[str, int]]:
    server = getattr(site, "_server", None)  # aiohttp keeps the asyncio.Server here
    sockets = getattr(server, "sockets", None) or ()
    return [(s.getsockname()[0], s.getsockname()[1]) for s in sockets]
