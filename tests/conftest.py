"""Shared test fixtures: blocking-call detection, temp configs, real peers.

Every test runs under blockbuster: a blocking call (file I/O, sleep, sync socket) made
by clgwd code on the event loop fails the test.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from blockbuster import BlockBuster, blockbuster_ctx

from clgwd.config import ClgwdConfig, parse_config

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    """Fail any test in which clgwd code blocks the event loop."""
    with blockbuster_ctx(scanned_modules=["clgwd"]) as bb:
        yield bb


@pytest.fixture(autouse=True)
def hermetic_network_defaults(tmp_path_factory: pytest.TempPathFactory,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reaches past loopback through the host's settings: pre-flight's default
    time servers come from an empty directory, not the host's chrony/timesyncd config,
    and the developer's HTTPS_PROXY/NO_PROXY do not steer the link."""
    from clgwd.net import preflight

    monkeypatch.setattr(preflight, "SYSTEM_ROOT", tmp_path_factory.mktemp("no-system"))
    for name in ("https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(params=["websockets", "picows"])
def link_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a link test once per websocket backend (``cloud.websocket_backend``): the
    link harness's configs (``tests.link.harness.FAST_LINK``) carry the choice."""
    from tests.link.harness import FAST_LINK

    monkeypatch.setitem(FAST_LINK, "websocket_backend", request.param)
    return str(request.param)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """An empty state dir for one test."""
    path = tmp_path / "state"
    path.mkdir()
    return path


@pytest.fixture
def make_config(tmp_path: Path, state_dir: Path):  # type: ignore[no-untyped-def]
    """Build a config on loopback with an ephemeral HTTP port and a temp control socket."""

    def _make(extra_yaml: str = "") -> ClgwdConfig:
        text = (
            f"state: {{dir: {state_dir}}}\n"
            "http: {listen: [{host: 127.0.0.1, port: 0}],"
            " tls_listen: [{host: 127.0.0.1, port: 0}]}\n"
            f"control: {{socket: {tmp_path / 'control.sock'}}}\n"
        ) + extra_yaml
        return parse_config(text)

    return _make


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("CLGWD_TEST", "1")


def pytest_asyncio_loop_factories(config: pytest.Config,
                                  item: pytest.Item) -> dict[str, LoopFactory]:
    """Tests marked ``both_loops`` run on asyncio and on uvloop; the rest on asyncio.

    The daemon runs on asyncio (uvloop cannot host pyroute2's netlink sockets), but the
    tunnel engine is shared with the reference cloud and the bench, which may run on
    uvloop, whose transports differ in ways the engine depends on."""
    loops: dict[str, LoopFactory] = {"asyncio": asyncio.new_event_loop}
    if item.get_closest_marker("both_loops") is not None:
        import uvloop

        loops["uvloop"] = uvloop.new_event_loop
    return loops


def require_root() -> None:
    """Skip unless root (network namespaces); CI runs as root so these tests run there."""
    if os.geteuid() != 0:
        pytest.skip("needs root")


def require_program(name: str) -> str:
    """Return the path of a peer program, failing (not skipping) in CI when it is missing."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed; scripts/test.sh installs it")
        pytest.skip(f"{name} is not installed")
    return path
