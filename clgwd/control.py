"""The local control socket: how ``clgwd status`` and friends reach the running daemon.

A unix socket (mode 0660) rather than the LAN listener, so the CLI needs no password:
access is granted by filesystem permissions to root and the ``clgwd`` group.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Self

from aiohttp import web

from clgwd import __version__
from clgwd.commands import CommandContext, CommandRouter
from clgwd.component import ComponentState, StatusTracker
from clgwd.config import ClgwdConfig
from clgwd.errors import StartupError
from clgwd.metrics import StatusSource
from clgwd.web.server import error_middleware

_LOGGER = logging.getLogger(__name__)

ReloadHook = Callable[[], Awaitable[dict[str, Any]]]


def _prepare_socket_path(path: Path) -> None:
    """Create the parent dir and remove a stale socket left by a crash (blocking)."""
    path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    if path.is_socket():
        path.unlink()
    elif path.exists():
        raise StartupError(f"control socket path {path} exists and is not a socket")


class ControlServer:
    """Component ``control``: JSON over HTTP on a unix socket, for the local CLI."""

    name = "control"

    def __init__(self, config: ClgwdConfig, statuses: StatusSource, reload: ReloadHook,
                 commands: CommandRouter | None = None) -> None:
        self.path = config.control.socket
        self._statuses = statuses
        self._reload = reload
        self._commands = commands
        self._started = time.time()
        self.tracker = StatusTracker(self.name)
        self.app = web.Application(middlewares=[error_middleware])
        self.app.router.add_get("/v1/status", self._status)
        self.app.router.add_post("/v1/reload", self._reload_handler)
        self.app.router.add_post("/v1/command/{method}", self._command_handler)
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> Self:
        self.tracker.set(ComponentState.STARTING)
        await asyncio.to_thread(_prepare_socket_path, self.path)
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False,
                                     shutdown_timeout=1.0)
        await self._runner.setup()
        try:
            await web.UnixSite(self._runner, str(self.path)).start()
            await asyncio.to_thread(os.chmod, self.path, 0o660)
        except OSError as err:
            await self._runner.cleanup()
            raise StartupError(f"cannot create control socket {self.path}: {err.strerror}") from err
        self.tracker.set(ComponentState.RUNNING, str(self.path))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.tracker.set(ComponentState.STOPPING)
        if self._runner is not None:
            await self._runner.cleanup()
        await asyncio.to_thread(self.path.unlink, missing_ok=True)
        self.tracker.set(ComponentState.STOPPED)

    async def run(self) -> None:
        """Served from aiohttp callbacks."""

    async def apply_config(self, config: ClgwdConfig) -> None:
        if config.control.socket != self.path:
            _LOGGER.warning("control.socket changed to %s; takes effect after a restart",
                            config.control.socket)

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response({
            "version": __version__,
            "pid": os.getpid(),
            "started_at": self._started,
            "components": {n: s.as_json() for n, s in self._statuses().items()},
        })

    async def _command_handler(self, request: web.Request) -> web.Response:
        """Run a command-router method for the local CLI (actor ``local:cli``)."""
        if self._commands is None:
            raise web.HTTPNotFound(text="commands are not available")
        try:
            params = await request.json() if request.can_read_body else {}
        except ValueError:
            params = None
        if not isinstance(params, dict):
            return web.json_response({"code": "bad_request",
                                      "message": "params must be a JSON object"}, status=400)
        result = await self._commands.call(request.match_info["method"], params,
                                           CommandContext(actor="local:cli"))
        return web.json_response(result)

    async def _reload_handler(self, request: web.Request) -> web.Response:
        result = await self._reload()
        return web.json_response(result, status=200 if result["applied"] else 422)
