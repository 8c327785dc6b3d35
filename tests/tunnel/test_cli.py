"""``clgwd tunnel list|start|stop`` through the real control socket."""

from __future__ import annotations

import asyncio
import json

import pytest

from clgwd import cli
from clgwd.control import ControlServer
from clgwd.daemon import Daemon, build_components
from clgwd.errors import EXIT_FAILURE
from clgwd.tunnel.component import TunnelComponent

from .conftest import HarnessFactory


async def test_cli_tunnel_commands(harness: HarnessFactory,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI lists, starts and stops tunnels as actor ``local:cli``."""
    h = await harness()

    async def reload() -> dict[str, object]:
        return {"applied": False, "errors": []}

    async with ControlServer(h.config, dict, reload, h.router) as control:
        sock = str(control.path)

        def run(*args: str) -> int:
            return cli.main(["tunnel", *args, "--socket", sock])

        assert await asyncio.to_thread(run, "start", "echo", "--expiry", "60") == 0
        out = capsys.readouterr().out
        assert "echo" in out and "started" in out
        assert await asyncio.to_thread(run, "list", "--json") == 0
        listed = {t["name"]: t for t in json.loads(capsys.readouterr().out)}
        assert listed["echo"]["status"] == "started"
        assert listed["echo"]["expires_in"] <= 60
        assert await asyncio.to_thread(run, "stop", "--all") == 0
        assert "started" not in capsys.readouterr().out
        assert await asyncio.to_thread(run, "start", "nope") == EXIT_FAILURE
        assert "no tunnel named" in capsys.readouterr().err
    starts = await h.audit("tunnel_start")
    assert starts[0]["actor"] == "local:cli"


async def test_daemon_wires_tunnel_component(tunnel_config) -> None:  # type: ignore[no-untyped-def]
    """``build_components`` adds the tunnel component and registers its commands."""
    daemon = Daemon(tunnel_config(""), None)
    components = build_components(daemon)
    tunnel = [c for c in components if c.name == "tunnel"]
    assert len(tunnel) == 1 and isinstance(tunnel[0], TunnelComponent)
    methods = daemon.commands.methods()
    assert methods["tunnel.start"] and methods["tunnel.stop"] and methods["tunnel.list"]
