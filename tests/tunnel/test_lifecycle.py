"""Tunnel lifecycle through the command router: start/stop/list, expiry, idle, reload."""

from __future__ import annotations

import asyncio

import pytest

from clgwd.commands import CommandContext
from clgwd.config import ConfigError, parse_config
from clgwd.tunnel.component import _limits
from clgwd.tunnel.manager import InvalidTunnelRequest, TunnelNotFound

from .conftest import HarnessFactory, tunnel_yaml

CLI = CommandContext(actor="local:cli")


def _by_name(result: dict[str, list[dict[str, object]]]) -> dict[str, dict[str, object]]:
    return {t["name"]: t for t in result["tunnels"]}  # type: ignore[misc]


async def test_start_stop_list(harness: HarnessFactory) -> None:
    """Start one, start all, stop all; each transition audited with the actor."""
    h = await harness()
    listed = _by_name(await h.router.call("tunnel.list", {}, CLI))
    assert {t["status"] for t in listed.values()} == {"stopped"}
    started = _by_name(await h.router.call("tunnel.start", {"name": "echo"}, CLI))
    assert started["echo"]["status"] == "started" and started["lan"]["status"] == "stopped"
    assert 3590 < started["echo"]["expires_in"] <= 3600  # type: ignore[operator]
    everything = _by_name(await h.router.call("tunnel.start", {"all": True}, CLI))
    assert {t["status"] for t in everything.values()} == {"started"}
    stopped = _by_name(await h.router.call("tunnel.stop", {"all": True}, CLI))
    assert {t["status"] for t in stopped.values()} == {"stopped"}
    starts = await h.audit("tunnel_start")
    assert starts[0]["actor"] == "local:cli" and starts[0]["tunnel"] == "echo"
    assert len(await h.audit("tunnel_stop")) == len(everything)


async def test_bad_requests(harness: HarnessFactory) -> None:
    h = await harness()
    with pytest.raises(TunnelNotFound):
        await h.router.call("tunnel.start", {"name": "nope"}, CLI)
    for params in ({}, {"name": "echo", "all": True}, {"name": 3},
                   {"name": "echo", "expiry": -1}, {"name": "echo", "expiry": True}):
        with pytest.raises(InvalidTunnelRequest):
            await h.router.call("tunnel.start", params, CLI)


async def test_expiry_is_capped_and_enforced(harness: HarnessFactory) -> None:
    """A requested expiry never exceeds the configured one; at expiry the tunnel stops."""
    h = await harness(tunnel_extra=", expiry: 0.3")
    started = _by_name(await h.start(expiry=5000))
    assert started["echo"]["expires_in"] <= 0.3  # type: ignore[operator]
    expired = await h.wait_audit("tunnel_expired", timeout=5)
    assert expired[0]["reason"] == "expired"
    assert h.component.manager.tunnels["echo"].state.value == "stopped"


async def test_idle_timeout_stops_tunnel(harness: HarnessFactory) -> None:
    h = await harness(tunnel_extra=", idle_timeout: 0.3")
    await h.start()
    stopped = await h.wait_audit("tunnel_stop", timeout=5)
    assert stopped[0]["reason"] == "idle"


async def test_stop_resets_live_streams_and_status_counts(harness: HarnessFactory) -> None:
    """Status shows streams and bytes; stopping the tunnel resets its streams."""
    h = await harness()
    await h.start()
    async with h.proxy() as proxy:
        reader, writer = await asyncio.open_connection(*proxy.address)
        writer.write(b"12345")
        assert await reader.readexactly(5) == b"12345"
        status = _by_name(await h.router.call("tunnel.list", {}, CLI))["echo"]
        assert status["streams"] == 1
        assert status["bytes_from_cloud"] == 5 and status["bytes_to_cloud"] == 5
        assert status["last_use"] is not None
        await h.router.call("tunnel.stop", {"name": "echo"}, CLI)
        assert await reader.read() == b""
        writer.close()
    closed = await h.wait_audit("stream_close")
    assert "tunnel stopped" in closed[0]["reason"]
    assert _by_name(await h.router.call("tunnel.list", {}, CLI))["echo"]["streams"] == 0


async def test_reload_removing_tunnel_stops_it(harness: HarnessFactory) -> None:
    h = await harness()
    await h.start("lan")
    text = tunnel_yaml(h.authority, h.echo.port).replace("    - {name: lan, target: lan}\n", "")
    new = parse_config(text)
    await h.component.apply_config(new)
    stops = await h.audit("tunnel_stop")
    assert stops and stops[0]["reason"] == "config-changed"
    assert "lan" not in _by_name(await h.router.call("tunnel.list", {}, CLI))


def test_config_defaults_and_limits() -> None:
    """An empty file works (no tunnels); expiry over 12 h and dangling names are errors."""
    cfg = parse_config("").tunnel
    assert (cfg.targets, cfg.tunnels, cfg.link_grace, cfg.default_expiry) == ([], [], 120.0,
                                                                             3600.0)
    assert cfg.stream_window == 1 << 20 and cfg.connection_window == 16 << 20
    assert cfg.shared_window_floor == 32 << 10
    with pytest.raises(ConfigError, match=r"shared_window_floor: 2097152 must not exceed "
                                          r"stream_window \(1048576\)"):
        parse_config("tunnel: {shared_window_floor: 2097152}")
    limits = _limits(parse_config("tunnel: {stream_window: 262144, shared_window_floor: 65536}"))
    assert (limits.stream_window, limits.shared_window_floor) == (262144, 65536)
    bad = [
        "tunnel: {default_expiry: 50000}",
        "tunnel: {tunnels: [{name: a, target: missing}]}",
        "tunnel: {targets: [{name: a, host: 'not a host!', ports: [80]}]}",
        "tunnel: {targets: [{name: a, host: 10.0.0.1/8, ports: [80]}]}",
        "tunnel: {targets: [{name: a, host: 10.0.0.1, ports: ['9-1']}]}",
        "tunnel: {targets: [{name: a, host: 10.0.0.1, ports: [80], allow_special: [all]}]}",
        "tunnel: {authority_public_key: abc}",
        "tunnel: {stream_window: 10}",
    ]
    for text in bad:
        with pytest.raises(ConfigError, match="must"):
            parse_config(text)
