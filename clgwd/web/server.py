"""The LAN-facing HTTP listener, run with aiohttp's ``AppRunner``.

It binds every configured address in ``__aenter__`` so the daemon can tell systemd it
is ready only once the sockets really accept connections, and reports a port that is
already taken by naming it.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Awaitable, Callable
from typing import Self

from aiohttp import web

from clgwd import __version__
from clgwd.component import HEALTHY_STATES, ComponentState, StatusTracker
from clgwd.config import ClgwdConfig
from clgwd.config.models import ListenAddress
from clgwd.errors import ClgwdError, StartupError
from clgwd.metrics import CONTENT_TYPE, Metrics, StatusSource

_LOGGER = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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
    """Expected errors become ``{"code", "message"}``; nothing leaks a traceback."""
    try:
        return await handler(request)
    except ClgwdError as err:
        return web.json_response({"code": err.code, "message": err.message},
                                 status=err.http_status)
    except web.HTTPException:
        raise
    except Exception:
        _LOGGER.exception("Unexpected error serving %s %s", request.method, request.path)
        return web.json_response({"code": "internal_error",
                                  "message": "internal error; see the gateway log"}, status=500)


class HttpServer:
    """Component ``http``: the public listener on the configured addresses."""

    name = "http"

    def __init__(self, config: ClgwdConfig, statuses: StatusSource, metrics: Metrics) -> None:
        self._listen = list(config.http.listen)
        self._statuses = statuses
        self._metrics = metrics
        self.tracker = StatusTracker(self.name)
        self.app = web.Application(middlewares=[error_middleware])
        self.app.router.add_get("/api/v1/health", self._health)
        self.app.router.add_get("/metrics", self._metrics_handler)
        self._runner: web.AppRunner | None = None
        self._sites: dict[ListenAddress, web.TCPSite] = {}

    @property
    def bound(self) -> list[tuple[str, int]]:
        """The (host, port) pairs really bound, with the kernel's port for port 0."""
        if self._runner is None:
            return []
        return [(addr[0], addr[1]) for addr in self._runner.addresses]

    async def __aenter__(self) -> Self:
        self.tracker.set(ComponentState.STARTING)
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False,
                                     shutdown_timeout=2.0)
        await self._runner.setup()
        try:
            for address in self._listen:
                await self._bind(address)
        except BaseException:
            await self._runner.cleanup()
            raise
        self.tracker.set(ComponentState.RUNNING, self._describe())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.tracker.set(ComponentState.STOPPING)
        if self._runner is not None:
            await self._runner.cleanup()
        self._sites.clear()
        self.tracker.set(ComponentState.STOPPED)

    async def run(self) -> None:
        """aiohttp serves from its own callbacks; nothing to loop over."""

    async def apply_config(self, config: ClgwdConfig) -> None:
        """Bind new addresses first, then release old ones, so a bad address changes nothing."""
        wanted = list(config.http.listen)
        added = [a for a in wanted if a not in self._sites]
        try:
            for address in added:
                await self._bind(address)
        except ClgwdError:
            for address in added:
                site = self._sites.pop(address, None)
                if site is not None:
                    await site.stop()
            raise
        for address in [a for a in self._sites if a not in wanted]:
            await self._sites.pop(address).stop()
        self._listen = wanted
        self.tracker.set(ComponentState.RUNNING, self._describe())

    async def _bind(self, address: ListenAddress) -> None:
        assert self._runner is not None
        site = web.TCPSite(self._runner, address.host, address.port, reuse_address=True)
        try:
            await site.start()
        except OSError as err:
            raise StartupError(describe_bind_error(address.host, address.port, err)) from err
        self._sites[address] = site
        _LOGGER.info("HTTP listening on %s", site.name)

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
