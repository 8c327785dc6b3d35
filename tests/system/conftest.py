"""A store and the system component in-process, with fake commands and a fake clock."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from clgwd.commands import CommandContext, CommandRouter
from clgwd.config import ClgwdConfig, load_config
from clgwd.store import EventFilter, Store
from clgwd.system import DaemonHooks, SystemComponent

CLOUD = CommandContext(actor="cloud")


@dataclass
class FakeClock:
    now: dt.datetime = dt.datetime(2026, 3, 28, 12, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class Rig:
    """The system component of one test, with what the daemon hooks saw."""

    tmp: Path
    config_path: Path
    config: ClgwdConfig
    store: Store
    router: CommandRouter
    system: SystemComponent
    clock: FakeClock
    restarts: list[str] = field(default_factory=list)
    reloads: int = 0

    async def call(self, method: str, params: dict[str, Any] | None = None,
                   actor: str = "cloud") -> Any:
        return await self.router.call(method, params or {}, CommandContext(actor=actor))

    async def subjects(self) -> list[str]:
        return [e.subject for e in await self.store.history.query(EventFilter())][::-1]

    async def outbox_kinds(self) -> list[str]:
        return [r.kind for r in await self.store.outbox.pending(0, 1000)]

    async def reload(self) -> dict[str, Any]:
        """What Daemon.reload does, minus the other components."""
        self.reloads += 1
        try:
            self.config = await asyncio.to_thread(load_config, self.config_path)
        except Exception as err:
            return {"applied": False, "errors": [str(err)]}
        return {"applied": True, "errors": []}


def system_text(tmp: Path, extra: str = "") -> str:
    return (f"state: {{dir: {tmp / 'state'}}}\n"
            f"system: {{update_command: [sh, -c, 'echo updated >> {tmp}/updates'], "
            f"reboot_command: [sh, -c, 'echo rebooted > {tmp}/rebooted'], "
            f"action_delay: 0.2, reboot_timeout: 5{extra}}}\n")


def _write(path: Path, text: str, mode: int) -> None:
    path.write_text(text)
    path.chmod(mode)
    (path.parent / "state").mkdir(exist_ok=True)


MakeRig = Callable[..., contextlib.AbstractAsyncContextManager[Rig]]


@pytest.fixture
def make_rig(tmp_path: Path) -> MakeRig:
    @contextlib.asynccontextmanager
    async def _make(text: str | None = None, mode: int = 0o640) -> AsyncIterator[Rig]:
        path = tmp_path / "clgwd.yaml"
        await asyncio.to_thread(_write, path, text or system_text(tmp_path), mode)
        config = await asyncio.to_thread(load_config, path)
        router = CommandRouter()
        async with Store(config) as store:
            rig: Rig
            hooks = DaemonHooks(config=lambda: rig.config, config_path=path,
                                reload=lambda: rig.reload(),  # noqa: PLW0108 - rig is bound below
                                restart=lambda why: rig.restarts.append(why))  # noqa: PLW0108
            clock = FakeClock()
            system = SystemComponent(store, router, hooks, clock=clock)
            rig = Rig(tmp_path, path, config, store, router, system, clock)
            async with system:
                task = asyncio.create_task(system.run(), name="test-system-run")
                try:
                    yield rig
                finally:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    return _make


async def wait_until(predicate: Callable[[], bool], limit: float = 10.0) -> None:
    async with asyncio.timeout(limit):
        while not predicate():
            await asyncio.sleep(0.02)
