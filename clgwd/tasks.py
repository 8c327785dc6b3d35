"""A TaskGroup that a component opens in ``__aenter__`` and closes in ``__aexit__``,
``wait_at_most``, the bounded wait every component loop needs, and ``import_off_loop``.

Tunnel work (stream opens, audit writes, session writers) is started from callbacks
that cannot await, yet every task must be owned and cancelled at teardown (chisel#608,
teleport#468 leaked them). ``TaskScope`` is that owner. A crash in one stream's task is
logged and counted instead of cancelling the daemon's main task; cancellation always
propagates.

Standard library only, shared by the gateway (tunnel component) and the reference
cloud (its tunnel hub), like ``clgwd.protocol.channel``.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
from collections.abc import Awaitable, Coroutine
from types import ModuleType
from typing import Any, Self

_LOGGER = logging.getLogger(__name__)


async def wait_at_most(awaitable: Awaitable[object], seconds: float | None) -> bool:
    """Await ``awaitable`` for at most ``seconds`` (None: no limit); True when it
    finished, False when the time ran out (it is then cancelled)."""
    try:
        async with asyncio.timeout(seconds):
            await awaitable
    except TimeoutError:
        return False
    return True


async def import_off_loop(name: str) -> ModuleType:
    """Import module ``name`` in a worker thread, or return it if already loaded.

    A part imports the third-party library it needs when it starts, not when the daemon
    is imported; importing reads files, so it does not happen on the event loop."""
    module = sys.modules.get(name)
    if module is not None:
        return module
    return await asyncio.to_thread(importlib.import_module, name)


class TaskScope:
    """Owns tasks started from callbacks; cancels and awaits them all on exit."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.crashes = 0
        """Tasks that ended with an unexpected exception (a bug); tests assert 0."""
        self._group: asyncio.TaskGroup | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> Self:
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        group, self._group = self._group, None
        if group is None:
            return
        for task in list(self._tasks):
            task.cancel()
        await group.__aexit__(None, None, None)

    def create_task(self, coro: Coroutine[Any, Any, Any], *,
                    name: str | None = None) -> asyncio.Task[Any]:
        if self._group is None:
            coro.close()
            raise RuntimeError(f"{self.name}: task scope is not open")
        task = self._group.create_task(self._guard(coro, name or "task"),
                                       name=name or f"clgwd[{self.name}].task")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        # A task cancelled before its first step never starts ``coro``: close it so it
        # is not reported as "never awaited" (a no-op when it ran).
        task.add_done_callback(lambda _: coro.close())
        return task

    async def _guard(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        try:
            await coro
        except Exception:
            self.crashes += 1
            _LOGGER.exception("%s: task %s crashed", self.name, name)

    @property
    def open(self) -> bool:
        return self._group is not None
