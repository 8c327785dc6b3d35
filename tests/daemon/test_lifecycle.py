"""Daemon lifecycle in-process: order, readiness, reload, failures."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

import aiohttp
import pytest

from clgwd.component import Component, ComponentState, StatusTracker
from clgwd.config import ClgwdConfig
from clgwd.daemon import Daemon, build_components
from clgwd.errors import EXIT_FAILURE, EXIT_OK, StartupError
from clgwd.sdnotify import Notifier
from clgwd.web.server import HttpServer
from tests.daemon.notify import NotifyListener

MakeConfig = Callable[..., ClgwdConfig]


class Recorder:
    """A component that records enter/run/exit into a shared journal."""

    def __init__(self, name: str, journal: list[str], *, fail_enter: bool = False,
                 fail_run: bool = False) -> None:
        self.name = name
        self.tracker = StatusTracker(name)
        self.journal = journal
        self.fail_enter = fail_enter
        self.fail_run = fail_run
        self.configs: list[ClgwdConfig] = []

    async def __aenter__(self) -> Self:
        self.journal.append(f"enter {self.name}")
        if self.fail_enter:
            raise StartupError(f"{self.name} cannot start")
        self.tracker.set(ComponentState.RUNNING)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.journal.append(f"exit {self.name}")
        self.tracker.set(ComponentState.STOPPED)

    async def run(self) -> None:
        self.journal.append(f"run {self.name}")
        if self.fail_run:
            raise RuntimeError(f"{self.name} crashed")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.journal.append(f"cancel {self.name}")
            raise

    async def apply_config(self, config: ClgwdConfig) -> None:
        self.configs.append(config)


def _daemon(config: ClgwdConfig, components: Sequence[Component], *,
            path: Path | None = None, notifier: Notifier | None = None) -> Daemon:
    return Daemon(config, path, notifier=notifier or Notifier({}),
                  component_factory=lambda _d: list(components))


async def _until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_components_start_in_order_and_stop_in_reverse(make_config: MakeConfig) -> None:
    journal: list[str] = []
    daemon = _daemon(make_config(), [Recorder(n, journal) for n in ("a", "b", "c")])
    task = asyncio.create_task(daemon.run())
    await _until(lambda: journal.count("run a") + journal.count("run b")
                 + journal.count("run c") == 3)
    daemon.request_stop("test")
    assert await asyncio.wait_for(task, 10) == EXIT_OK
    assert journal[:3] == ["enter a", "enter b", "enter c"]
    assert journal[-3:] == ["exit c", "exit b", "exit a"]
    assert {"cancel a", "cancel b", "cancel c"} <= set(journal)


async def test_failed_start_unwinds_what_was_started(make_config: MakeConfig) -> None:
    journal: list[str] = []
    parts = [Recorder("a", journal), Recorder("b", journal, fail_enter=True),
             Recorder("c", journal)]
    daemon = _daemon(make_config(), parts)
    assert await asyncio.wait_for(daemon.run(), 10) == EXIT_FAILURE
    assert journal == ["enter a", "enter b", "exit a"]


async def test_crashing_loop_stops_everything(make_config: MakeConfig) -> None:
    journal: list[str] = []
    daemon = _daemon(make_config(), [Recorder("a", journal), Recorder("b", journal,
                                                                     fail_run=True)])
    with pytest.raises(ExceptionGroup):
        await asyncio.wait_for(daemon.run(), 10)
    assert journal[-2:] == ["exit b", "exit a"]


async def test_stop_during_startup_exits_cleanly(make_config: MakeConfig) -> None:
    """SIGTERM while components are still starting: unwind, exit 0, no READY."""
    journal: list[str] = []
    gate = asyncio.Event()

    class Slow(Recorder):
        async def __aenter__(self) -> Self:
            self.journal.append("enter slow")
            await gate.wait()
            return self

    listener_path = Path(make_config().state.dir) / "n.sock"
    listener = NotifyListener(listener_path)
    notifier = Notifier({"NOTIFY_SOCKET": str(listener_path)})
    daemon = _daemon(make_config(), [Recorder("a", journal), Slow("slow", journal)],
                     notifier=notifier)
    task = asyncio.create_task(daemon.run())
    await _until(lambda: "enter slow" in journal)
    daemon.request_stop("SIGTERM")
    assert await asyncio.wait_for(task, 10) == EXIT_OK
    assert journal == ["enter a", "enter slow", "exit a"]
    message = await listener.next()
    assert message.get("STOPPING") == "1"
    assert all("READY" not in m for m in listener.messages)
    listener.close()


async def test_ready_only_after_http_is_bound(make_config: MakeConfig, tmp_path: Path) -> None:
    """When READY=1 arrives, the HTTP port already accepts connections."""
    listener = NotifyListener(tmp_path / "notify")
    daemon = Daemon(make_config(), None, notifier=Notifier({"NOTIFY_SOCKET": str(listener.path)}))
    task = asyncio.create_task(daemon.run())
    try:
        ready = await listener.wait_for("READY")
        assert ready["STATUS"].startswith("Running")
        http = daemon.component("http")
        assert isinstance(http, HttpServer)
        host, port = http.bound[0]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://{host}:{port}/api/v1/health") as resp:
                assert resp.status == 200
                body = await resp.json()
        assert body["status"] == "ok"
        assert {"store", "control", "http"} <= set(body["components"])
    finally:
        daemon.request_stop("test")
        assert await asyncio.wait_for(task, 10) == EXIT_OK
    assert (await listener.wait_for("STOPPING"))["STOPPING"] == "1"
    listener.close()


async def test_metrics_expose_uptime_and_component_states(make_config: MakeConfig) -> None:
    daemon = Daemon(make_config(), None, notifier=Notifier({}))
    task = asyncio.create_task(daemon.run())
    try:
        await _until(lambda: daemon.statuses().get("http") is not None
                     and daemon.statuses()["http"].state == ComponentState.RUNNING)
        http = daemon.component("http")
        assert isinstance(http, HttpServer)
        host, port = http.bound[0]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://{host}:{port}/metrics") as resp:
                text = await resp.text()
                assert resp.headers["Content-Type"].startswith("text/plain")
        assert "clgwd_uptime_seconds " in text
        assert 'clgwd_component_state{component="http",state="running"} 1.0' in text
        assert 'clgwd_build_info{version="' in text
    finally:
        daemon.request_stop("test")
        await asyncio.wait_for(task, 10)


async def test_port_in_use_is_named(make_config: MakeConfig) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    config = make_config().model_copy(deep=True)
    text = f"http: {{listen: [{{host: 127.0.0.1, port: {port}}}]}}\n"
    from clgwd.config import parse_config

    config = parse_config(f"state: {{dir: {make_config().state.dir}}}\n"
                          f"control: {{socket: {make_config().control.socket}}}\n" + text)
    try:
        daemon = Daemon(config, None, notifier=Notifier({}))
        with pytest.raises(StartupError, match=f"port {port} is already in use"):
            async with HttpServer(config, daemon.statuses, daemon.metrics):
                pass
        assert await asyncio.wait_for(daemon.run(), 10) == EXIT_FAILURE
    finally:
        blocker.close()


async def test_reload_applies_valid_config_and_keeps_last_good(
        make_config: MakeConfig, tmp_path: Path) -> None:
    journal: list[str] = []
    comp = Recorder("a", journal)
    config_file = tmp_path / "clgwd.yaml"
    base = make_config()
    config_file.write_text(f"state: {{dir: {base.state.dir}}}\nlogging: {{level: debug}}\n")
    daemon = _daemon(base, [comp], path=config_file)
    task = asyncio.create_task(daemon.run())
    try:
        await _until(lambda: "run a" in journal)
        result = await daemon.reload()
        assert result == {"applied": True, "errors": []}
        assert daemon.config.logging.level == "debug"
        assert comp.configs[-1].logging.level == "debug"

        config_file.write_text("logging: {level: loud}\nbogus: 1\n")
        result = await daemon.reload()
        assert result["applied"] is False
        assert any(e.startswith("logging.level: must be one of") for e in result["errors"])
        assert "bogus: unknown key, got 1" in result["errors"]
        assert daemon.config.logging.level == "debug"
        assert len(comp.configs) == 1
    finally:
        daemon.request_stop("test")
        await asyncio.wait_for(task, 10)


async def test_component_failing_to_apply_reload_rolls_back_others(
        make_config: MakeConfig, tmp_path: Path) -> None:
    journal: list[str] = []
    first = Recorder("first", journal)

    class Refuses(Recorder):
        async def apply_config(self, config: ClgwdConfig) -> None:
            raise StartupError("cannot listen on 127.0.0.1:1: in use")

    config_file = tmp_path / "clgwd.yaml"
    config_file.write_text("logging: {level: warning}\n")
    base = make_config()
    daemon = _daemon(base, [first, Refuses("second", journal)], path=config_file)
    task = asyncio.create_task(daemon.run())
    try:
        await _until(lambda: "run second" in journal)
        result = await daemon.reload()
        assert result["applied"] is False
        assert [c.logging.level for c in first.configs] == ["warning", base.logging.level]
        assert daemon.config is base
    finally:
        daemon.request_stop("test")
        await asyncio.wait_for(task, 10)


async def test_http_rebinds_on_reload(make_config: MakeConfig, tmp_path: Path) -> None:
    """A changed listen address is bound before the old one is released."""
    from clgwd.config import parse_config

    base = make_config()
    config_file = tmp_path / "clgwd.yaml"
    config_file.write_text(
        f"state: {{dir: {base.state.dir}}}\ncontrol: {{socket: {base.control.socket}}}\n"
        "http: {listen: [{host: 127.0.0.2, port: 0}],"
        " tls_listen: [{host: 127.0.0.2, port: 0}]}\n")
    daemon = Daemon(base, config_file, notifier=Notifier({}))
    task = asyncio.create_task(daemon.run())
    try:
        await _until(lambda: daemon.statuses().get("http") is not None
                     and daemon.statuses()["http"].state == ComponentState.RUNNING)
        assert (await daemon.reload())["applied"] is True
        http = daemon.component("http")
        assert isinstance(http, HttpServer)
        assert {h for h, _ in http.bound} == {"127.0.0.2"}
        assert len(http.bound) == 2  # plain and HTTPS
        assert parse_config(config_file.read_text()).http.listen[0].host == "127.0.0.2"
    finally:
        daemon.request_stop("test")
        await asyncio.wait_for(task, 10)


async def test_reload_is_recorded_in_history(make_config: MakeConfig, tmp_path: Path) -> None:
    base = make_config()
    config_file = tmp_path / "clgwd.yaml"
    config_file.write_text(f"state: {{dir: {base.state.dir}}}\n"
                           f"control: {{socket: {base.control.socket}}}\n"
                           "http: {listen: [{host: 127.0.0.1, port: 0}],"
                           " tls_listen: [{host: 127.0.0.1, port: 0}]}\n")
    daemon = Daemon(base, config_file, notifier=Notifier({}))
    task = asyncio.create_task(daemon.run())
    try:
        await _until(lambda: daemon.statuses().get("http") is not None
                     and daemon.statuses()["http"].state == ComponentState.RUNNING)
        await daemon.reload()
        from clgwd.store import EventFilter, Store

        store = daemon.component("store")
        assert isinstance(store, Store)
        (event,) = await store.history.query(EventFilter(asset="Gateway configuration"))
        assert event.actor == "local:config-file"
    finally:
        daemon.request_stop("test")
        await asyncio.wait_for(task, 10)


def test_production_components_in_dependency_order(make_config: MakeConfig) -> None:
    daemon = Daemon(make_config(), None, notifier=Notifier({}))
    names = [c.name for c in build_components(daemon)]
    assert names[:3] == ["reset", "store", "system"]  # a pending reset wipes before the store
    assert names.index("control") < names.index("http")


async def test_watchdog_pings_only_while_healthy(make_config: MakeConfig,
                                                 tmp_path: Path) -> None:
    journal: list[str] = []
    comp = Recorder("a", journal)
    listener = NotifyListener(tmp_path / "wd")
    notifier = Notifier({"NOTIFY_SOCKET": str(listener.path), "WATCHDOG_USEC": "100000"})
    daemon = _daemon(make_config(), [comp], notifier=notifier)
    task = asyncio.create_task(daemon.run())
    try:
        await listener.wait_for("WATCHDOG", timeout=5)
        comp.tracker.set(ComponentState.FAILED, "wedged")
        await asyncio.sleep(0.15)
        while True:  # drain what was sent before the failure was noticed
            try:
                await listener.next(timeout=0.05)
            except TimeoutError:
                break
        listener.messages.clear()
        await asyncio.sleep(0.4)
        with pytest.raises(TimeoutError):
            await listener.wait_for("WATCHDOG", timeout=0.2)
        comp.tracker.set(ComponentState.RUNNING)
        await listener.wait_for("WATCHDOG", timeout=5)
    finally:
        daemon.request_stop("test")
        await asyncio.wait_for(task, 10)
        listener.close()


async def test_status_lines_follow_state_changes(make_config: MakeConfig,
                                                 tmp_path: Path) -> None:
    journal: list[str] = []
    comp = Recorder("a", journal)
    listener = NotifyListener(tmp_path / "st")
    daemon = _daemon(make_config(), [comp],
                     notifier=Notifier({"NOTIFY_SOCKET": str(listener.path)}))
    task = asyncio.create_task(daemon.run())
    try:
        await listener.wait_for("READY")
        comp.tracker.set(ComponentState.DEGRADED, "cloud unreachable")
        message = await listener.wait_for("STATUS")
        assert message["STATUS"] == "Running with problems: a degraded (cloud unreachable)"
    finally:
        daemon.request_stop("test")
        await asyncio.wait_for(task, 10)
        listener.close()


def _unused(*_: Any) -> None:
    """Keep imports used by type annotations only."""
