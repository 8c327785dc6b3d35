"""Cloud commands, idempotency, goaway, the binary lane and certificate renewal."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from clgwd.commands import CommandContext
from clgwd.config import Secret
from clgwd.link.connection import LinkState
from clgwd.protocol import rpc as p
from clgwd.protocol.channel import BinaryChannel, LinkDown
from clgwd.protocol.rpc import RpcFailed
from tests.link.harness import (
    Gateway,
    enroll_gateway,
    gateway_config,
    refcloud,
    running_gateway,
    wait_for,
)

pytestmark = pytest.mark.usefixtures("link_backend")  # both websocket backends


class Counter:
    """A mutating handler that counts how often it really ran."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        self.calls.append(dict(params))
        await asyncio.sleep(0.05)
        return {"run": len(self.calls), "key": ctx.idempotency_key, "actor": ctx.actor}


async def test_repeated_idempotency_key_returns_first_result(tmp_path: Path) -> None:
    """A mutating command repeated with the same key runs once, also across a restart."""
    counter = Counter()

    def setup(gw: Gateway) -> None:
        gw.commands.register("sync.now", counter, mutating=True)

    async with refcloud(tmp_path / "cloud") as cloud:
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file)
        await enroll_gateway(config, cloud)
        async with running_gateway(config, setup) as gw:
            await gw.online()
            gid = gw.link.gateway_id or ""
            first, second = await asyncio.gather(
                cloud.command(gid, "sync.now", {"full": True}, idempotency_key="k-1"),
                cloud.command(gid, "sync.now", {"full": True}, idempotency_key="k-1"))
            assert first == second == {"run": 1, "key": "k-1", "actor": "cloud"}
            assert counter.calls == [{"full": True}]
            other = await cloud.command(gid, "sync.now", {}, idempotency_key="k-2")
            assert other["run"] == 2
        async with running_gateway(config, setup) as gw:
            await gw.online()
            again = await cloud.command(gid, "sync.now", {}, idempotency_key="k-1")
            assert again == first
            assert len(counter.calls) == 2


async def test_mutating_command_without_key_is_refused(tmp_path: Path) -> None:
    """Mutating methods without an idempotency key get -32602 and do not run."""
    counter = Counter()

    def setup(gw: Gateway) -> None:
        gw.commands.register("sync.now", counter, mutating=True)

    async with refcloud(tmp_path / "cloud") as cloud:
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file)
        await enroll_gateway(config, cloud)
        async with running_gateway(config, setup) as gw:
            await gw.online()
            session = cloud.sessions[gw.link.gateway_id or ""]
            with pytest.raises(RpcFailed) as info:
                await session.call("sync.now", {})
            assert info.value.error.code == p.INVALID_PARAMS
            assert counter.calls == []


async def test_goaway_reconnects_at_once_and_drains_old_socket(tmp_path: Path) -> None:
    """On goaway the gateway opens a new socket immediately; the old one closes after."""
    async with refcloud(tmp_path / "cloud") as cloud:
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file, backoff_base=5.0,
                                backoff_cap=10.0)
        await enroll_gateway(config, cloud)
        async with running_gateway(config) as gw:
            await gw.online()
            gid = gw.link.gateway_id or ""
            old = cloud.sessions[gid]
            loop = asyncio.get_running_loop()
            started = loop.time()
            await old.goaway(0, "redeploy")
            await wait_for(lambda: cloud.sessions.get(gid) not in (None, old), limit=3)
            assert loop.time() - started < 2.0, "goaway must not wait for backoff"
            await old.closed.wait()
            await gw.online()
            await gw.enqueue("event", {"after": "goaway"})
            await wait_for(lambda: _depth_zero(gw))


async def _depth_zero(gw: Gateway) -> bool:
    return await gw.store.outbox.depth() == 0


class Echo:
    """A BinaryEndpoint that echoes every frame back, reversed."""

    def __init__(self) -> None:
        self.channel: BinaryChannel | None = None
        self.events: list[str] = []

    async def on_link_up(self, channel: BinaryChannel) -> None:
        self.channel = channel
        self.events.append("up")

    async def on_binary(self, data: bytes) -> None:
        assert self.channel is not None
        await self.channel.send_binary(data[::-1])

    async def on_link_down(self) -> None:
        self.events.append("down")


async def test_binary_lane_reaches_endpoint_in_order_and_back(tmp_path: Path) -> None:
    """Binary frames go cloud -> endpoint -> cloud in order; LinkDown after the socket died."""
    echo = Echo()
    received: list[bytes] = []

    async def collect(data: bytes) -> None:
        received.append(data)

    async with refcloud(tmp_path / "cloud", tunnel_mux=False) as cloud:
        cloud.on_session_ready.append(lambda s: s.set_binary_handler(collect))
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file, backoff_base=5.0,
                                backoff_cap=10.0)
        await enroll_gateway(config, cloud)
        async with running_gateway(config, lambda gw: gw.link.set_binary_endpoint(echo)) as gw:
            await gw.online()
            session = cloud.sessions[gw.link.gateway_id or ""]
            frames = [bytes([i]) * (i * 1000 + 1) for i in range(50)]
            for frame in frames:
                await session.send_binary(frame)
            await wait_for(lambda: len(received) == 50)
            assert received == [f[::-1] for f in frames]
            assert echo.events == ["up"]
            channel = echo.channel
            await cloud.stop()
            await wait_for(lambda: echo.events == ["up", "down"])
            assert channel is not None
            with pytest.raises(LinkDown):
                await channel.send_binary(b"late")


async def test_certificate_is_renewed_over_the_link(tmp_path: Path) -> None:
    """Past 2/3 of its lifetime the client certificate is replaced via cert.renew."""
    async with refcloud(tmp_path / "cloud", cert_lifetime=dt.timedelta(seconds=6)) as cloud:
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file)
        await enroll_gateway(config, cloud)
        cert_file = config.state.dir / "cloud" / "device.crt"
        before = cert_file.read_text()
        async with running_gateway(config) as gw:
            await gw.online()
            await wait_for(lambda: cert_file.read_text() != before, limit=10,
                           what="renewed certificate")
            await asyncio.sleep(1.0)
            methods = [json.loads(t).get("method") for d, t in gw.traffic if d == "out"]
            assert methods.count(p.CERT_RENEW) == 1, "renewed more than once in 1 s"
            assert gw.link.state == LinkState.ONLINE


async def test_idempotency_key_reused_for_another_method_is_a_conflict(
        tmp_path: Path) -> None:
    """A key first used for sync.now cannot replay as config.set (-32003)."""
    counter = Counter()

    def setup(gw: Gateway) -> None:
        gw.commands.register("sync.now", counter, mutating=True)
        gw.commands.register("config.set", counter, mutating=True)

    async with refcloud(tmp_path / "cloud") as cloud:
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file)
        await enroll_gateway(config, cloud)
        async with running_gateway(config, setup) as gw:
            await gw.online()
            gid = gw.link.gateway_id or ""
            await cloud.command(gid, "sync.now", {}, idempotency_key="same")
            with pytest.raises(RpcFailed) as info:
                await cloud.command(gid, "config.set", {}, idempotency_key="same")
            assert info.value.error.code == p.IDEMPOTENCY_CONFLICT
            assert len(counter.calls) == 1


async def test_onboarding_enroll_method_connects(tmp_path: Path) -> None:
    """CloudLink.enroll (what the onboarding page calls) enrolls and the link connects."""
    async with refcloud(tmp_path / "cloud") as cloud:
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file)
        async with running_gateway(config) as gw:
            await wait_for(lambda: gw.link.state == LinkState.NOT_ENROLLED)
            token = await cloud.create_token("acme")
            enrollment = await gw.link.enroll("acme", Secret(token))
            assert enrollment.gateway_id == gw.link.gateway_id
            await gw.online(limit=5)
            assert gw.link.info()["state"] == "online"


async def test_frames_sent_right_after_hello_wait_for_on_link_up(tmp_path: Path) -> None:
    """A cloud that sends binary the instant hello is answered never beats on_link_up."""
    echo = Echo()
    received: list[bytes] = []

    async def collect(data: bytes) -> None:
        received.append(data)

    async def burst(session: Any) -> None:
        await session.ready.wait()
        for i in range(20):
            await session.send_binary(bytes([i]))

    async with refcloud(tmp_path / "cloud", tunnel_mux=False) as cloud, asyncio.TaskGroup() as tg:
        def on_ready(session: Any) -> None:
            session.set_binary_handler(collect)
            tg.create_task(burst(session))

        cloud.on_session_ready.append(on_ready)
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file)
        await enroll_gateway(config, cloud)
        async with running_gateway(config, lambda gw: gw.link.set_binary_endpoint(echo)) as gw:
            await gw.online()
            await wait_for(lambda: len(received) == 20)
            assert received == [bytes([i]) for i in range(20)]


class Recorder:
    """A BinaryEndpoint that records what it is given."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.ups = 0

    async def on_link_up(self, channel: BinaryChannel) -> None:
        self.ups += 1

    async def on_binary(self, data: bytes) -> None:
        self.received.append(data)

    async def on_link_down(self) -> None:
        pass


async def test_binary_on_a_draining_socket_never_reaches_the_endpoint(tmp_path: Path) -> None:
    """After a goaway the endpoint belongs to the new socket: binary messages still
    arriving on the old one are dropped instead of confusing the new tunnel session."""
    recorder = Recorder()
    release = asyncio.Event()

    async def slow(params: Mapping[str, Any], ctx: CommandContext) -> Any:
        await release.wait()  # keeps the old socket draining
        return {"tunnels": []}

    def setup(gw: Gateway) -> None:
        gw.link.set_binary_endpoint(recorder)
        gw.commands.register("tunnel.list", slow, mutating=False)

    async with refcloud(tmp_path / "cloud", tunnel_mux=False) as cloud, \
            asyncio.TaskGroup() as tg:
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file, drain_timeout=30)
        await enroll_gateway(config, cloud)
        async with running_gateway(config, setup) as gw:
            await gw.online()
            gid = gw.link.gateway_id or ""
            old = cloud.sessions[gid]
            pending = tg.create_task(old.call("tunnel.list", {}))
            await asyncio.sleep(0.1)
            await old.goaway(0, "test")
            await wait_for(lambda: recorder.ups == 2, what="on_link_up for the new socket")
            await old.send_binary(b"stale")
            await old.call("status.report", {})  # answered after the stale frame was read
            new = cloud.sessions[gid]
            await new.send_binary(b"fresh")
            await wait_for(lambda: recorder.received == [b"fresh"], what="fresh frame")
            release.set()
            assert (await pending) == {"tunnels": []}


async def test_cloud_may_not_enroll_or_call_other_local_only_methods(tmp_path: Path) -> None:
    """cloud.enroll and the other CLOUD_REFUSED methods answer -32004 local_only to the
    cloud and never run (the identity files stay as they were); reads stay allowed."""
    counter = Counter()

    def setup(gw: Gateway) -> None:
        gw.commands.register("network.apply", counter, mutating=True)

    async with refcloud(tmp_path / "cloud") as cloud:
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file)
        await enroll_gateway(config, cloud)
        async with running_gateway(config, setup) as gw:
            await gw.online()
            gid = gw.link.gateway_id or ""
            before = await asyncio.to_thread(gw.link.files.fingerprint)
            token = await cloud.create_token("evil")
            for method, params, key in (
                    ("cloud.enroll", {"account_id": "evil", "token": token}, "k-1"),
                    ("network.apply", {"ports": [{"name": "eth0", "mode": "dhcp"}]}, "k-2")):
                with pytest.raises(RpcFailed) as info:
                    await cloud.command(gid, method, params, idempotency_key=key)
                assert info.value.error.code == p.LOCAL_ONLY
                assert info.value.error.data == {"code": "local_only"}
                assert "gateway's LAN" in info.value.error.message
            assert counter.calls == []
            assert await asyncio.to_thread(gw.link.files.fingerprint) == before
            status = await cloud.command(gid, "cloud.status", {})
            assert status["account_id"] == "acme" and status["link"] == "connected"
