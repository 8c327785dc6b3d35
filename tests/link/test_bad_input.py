"""The link survives bad input from the cloud and bad networks, with a clear error."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from clgwd.config import Secret
from clgwd.link.connection import LinkState
from clgwd.link.enroll import enroll
from clgwd.protocol import rpc as p
from clgwd.protocol.rpc import RpcFailed
from clgwd.refcloud.sessions import GatewaySession
from tests.link.harness import enroll_gateway, gateway_config, refcloud, running_gateway, wait_for

pytestmark = pytest.mark.usefixtures("link_backend")  # both websocket backends


def _out_errors(traffic: list[tuple[str, str]]) -> list[dict[str, object]]:
    out = [json.loads(t) for d, t in traffic if d == "out"]
    return [m["error"] for m in out if "error" in m]


async def test_malformed_json_gets_parse_error_and_link_stays_up(tmp_path: Path) -> None:
    """Invalid JSON is answered with -32700 (id null); the connection is kept."""
    async with refcloud(tmp_path / "cloud") as cloud:
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file)
        await enroll_gateway(config, cloud)
        async with running_gateway(config) as gw:
            await gw.online()
            session = cloud.sessions[gw.link.gateway_id or ""]
            await session.ws.send_str('{"jsonrpc": "2.0", "method": ')
            await session.ws.send_str("[1, 2]")
            await wait_for(lambda: len(_out_errors(gw.traffic)) >= 2)
            codes = [e["code"] for e in _out_errors(gw.traffic)]
            assert codes == [p.PARSE_ERROR, p.INVALID_REQUEST]
            result = await cloud.command(gw.link.gateway_id or "", "status.report", {})
            assert "components" in result
            assert cloud.sessions[gw.link.gateway_id or ""] is session


async def test_unknown_and_unimplemented_methods_answer_clear_errors(tmp_path: Path) -> None:
    """Unknown methods get -32601; protocol methods not built yet get not_supported_yet."""
    async with refcloud(tmp_path / "cloud") as cloud:
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file)
        await enroll_gateway(config, cloud)
        async with running_gateway(config) as gw:
            await gw.online()
            gid = gw.link.gateway_id or ""
            try:
                await cloud.command(gid, "no.such.method", {})
                raise AssertionError("unknown method succeeded")
            except RpcFailed as err:
                assert err.error.code == p.METHOD_NOT_FOUND
            try:
                await cloud.command(gid, "system.reboot", {})
                raise AssertionError("unimplemented method succeeded")
            except RpcFailed as err:
                assert err.error.code == p.NOT_SUPPORTED_YET
                assert err.error.data == {"code": "not_supported_yet"}


async def test_wrong_types_and_unknown_reply_ids_are_harmless(tmp_path: Path) -> None:
    """params that are not an object get -32602; replies to unknown ids are counted, ignored."""
    async with refcloud(tmp_path / "cloud") as cloud:
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file)
        await enroll_gateway(config, cloud)
        async with running_gateway(config) as gw:
            await gw.online()
            session = cloud.sessions[gw.link.gateway_id or ""]
            await session.ws.send_str(
                '{"jsonrpc":"2.0","id":7,"method":"status.report","params":[1]}')
            await session.ws.send_str('{"jsonrpc":"2.0","id":999999,"result":{"x":1}}')
            await session.ws.send_str('{"jsonrpc":"2.0","id":true,"method":"x","params":{}}')
            await wait_for(lambda: len(_out_errors(gw.traffic)) >= 2)
            assert [e["code"] for e in _out_errors(gw.traffic)] == [
                p.INVALID_PARAMS, p.INVALID_REQUEST]
            await cloud.command(gw.link.gateway_id or "", "status.report", {})
            assert gw.link.state == LinkState.ONLINE


async def test_oversized_message_closes_and_reconnects(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A message over max_message_bytes closes the socket (1009); the link reconnects."""
    async with refcloud(tmp_path / "cloud") as cloud:
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file, max_message_bytes=65552)
        await enroll_gateway(config, cloud)
        async with running_gateway(config) as gw:
            await gw.online()
            first = cloud.sessions[gw.link.gateway_id or ""]
            await first.ws.send_str("x" * 100_000)
            await first.closed.wait()
            await wait_for(lambda: cloud.sessions.get(gw.link.gateway_id or "") not in (
                None, first), what="new session")
            await gw.online()
            assert "larger than the configured limit (1009)" in caplog.text


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """Accepts TCP connections and never says anything (a wedged cloud)."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in held:
            writer.close()
        await server.wait_closed()


async def test_cloud_that_never_handshakes_times_out_and_retries(tmp_path: Path) -> None:
    """TCP accepted but no TLS/HTTP answer: each attempt times out, then backs off."""
    async with refcloud(tmp_path / "cloud") as cloud:
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file)
        await enroll_gateway(config, cloud)
    async with silent_server() as port:
        meta = config.state.dir / "cloud" / "identity.json"
        data = json.loads(meta.read_text())
        data["cloud_url"] = f"https://127.0.0.1:{port}"
        meta.write_text(json.dumps(data))
        config = gateway_config(tmp_path, f"https://127.0.0.1:{port}", None,
                                open_timeout=0.3)
        attempts = 0

        def count() -> None:
            nonlocal attempts
            attempts += 1

        async with running_gateway(config) as gw:
            gw.link.on_attempt = count
            await wait_for(lambda: attempts >= 3, limit=10)
            assert gw.link.state in (LinkState.BACKOFF, LinkState.CONNECTING)
            assert "handshake" in gw.link.last_error or "TLS" in gw.link.last_error


async def _active_alerts(gw: object) -> set[str]:
    return {a.code for a in await gw.store.alerts.active()}  # type: ignore[attr-defined]


async def test_wrong_ca_raises_alert_and_keeps_retrying(tmp_path: Path) -> None:
    """A cloud whose certificate the pinned CA did not sign is never trusted; alert raised."""
    async with refcloud(tmp_path / "cloud") as cloud, refcloud(tmp_path / "other") as other:
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file)
        await enroll_gateway(config, cloud)
        shutil.copy(other.ca_file, config.state.dir / "cloud" / "ca.crt")
        async with running_gateway(config) as gw:
            await wait_for(lambda: _has_alert(gw, "cloud_tls_untrusted"))
            assert gw.link.state in (LinkState.BACKOFF, LinkState.CONNECTING)
            assert "TLS verification failed" in gw.link.last_error
            assert cloud.connection_attempts == 0


async def _has_alert(gw: object, code: str) -> bool:
    return code in await _active_alerts(gw)


async def test_expired_certificate_stops_retrying_with_alert(tmp_path: Path) -> None:
    """An expired client certificate is detected locally: no attempts, alert, auth_failed."""
    async with refcloud(tmp_path / "cloud",
                        cert_lifetime=dt.timedelta(seconds=1)) as cloud:
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file)
        await enroll_gateway(config, cloud)
        await asyncio.sleep(1.2)
        async with running_gateway(config) as gw:
            await wait_for(lambda: gw.link.state == LinkState.AUTH_FAILED)
            assert await _has_alert(gw, "cloud_cert_invalid")
            assert "expired" in gw.link.tracker.current.message
            assert cloud.connection_attempts == 0


async def test_revoked_gateway_gets_403_stops_and_recovers_after_reenroll(
        tmp_path: Path) -> None:
    """HTTP 403 stops retrying and raises an alert; re-enrolling brings the link back."""
    async with refcloud(tmp_path / "cloud") as cloud:
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file)
        await enroll_gateway(config, cloud)
        async with running_gateway(config) as gw:
            await gw.online()
            await cloud.store.set_revoked(gw.link.gateway_id or "", True)
            await cloud.sessions[gw.link.gateway_id or ""].close(4403, "revoked")
            await wait_for(lambda: gw.link.state == LinkState.AUTH_FAILED)
            assert await _has_alert(gw, "cloud_auth_failed")
            attempts = cloud.connection_attempts
            await asyncio.sleep(1.0)
            assert cloud.connection_attempts == attempts, "kept retrying after 403"
            await enroll_gateway(config, cloud)
            await gw.online()
            assert not await _has_alert(gw, "cloud_auth_failed")


async def test_retry_after_is_honoured(tmp_path: Path) -> None:
    """503 with Retry-After: 0.5 keeps attempts at least that far apart."""
    async with refcloud(tmp_path / "cloud") as cloud:
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file)
        await enroll_gateway(config, cloud)
        cloud.reject = (503, 0.5)
        async with running_gateway(config) as gw:
            await wait_for(lambda: cloud.connection_attempts >= 1)
            await asyncio.sleep(1.6)
            assert 2 <= cloud.connection_attempts <= 4
            assert "HTTP 503" in gw.link.last_error
            cloud.reject = None
            await gw.online(limit=5)


async def test_restarting_cloud_loses_no_record(tmp_path: Path) -> None:
    """A cloud that restarts repeatedly while records are queued gets every record once."""
    async with refcloud(tmp_path / "cloud") as cloud:
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file)
        await enroll_gateway(config, cloud)
        async with running_gateway(config) as gw:
            await gw.online()
            n = 0
            for _ in range(4):
                for _ in range(50):
                    n += 1
                    await gw.enqueue("event", {"n": n})
                await asyncio.sleep(0.05)
                await cloud.stop()
                for _ in range(50):
                    n += 1
                    await gw.enqueue("event", {"n": n})
                await cloud.start()
            await wait_for(lambda: _delivered(gw), limit=20, what="all delivered")
            rows = await cloud.store.fetchall(
                "SELECT payload FROM records WHERE kind = 'event' ORDER BY seq")
            assert [json.loads(r["payload"])["n"] for r in rows] == list(range(1, n + 1))


async def _delivered(gw: object) -> bool:
    return bool(await gw.store.outbox.depth() == 0)  # type: ignore[attr-defined]


async def test_clock_skew_raises_alert(tmp_path: Path) -> None:
    """A cloud clock an hour away from the gateway's raises cloud_clock_skew; link works."""
    async with refcloud(tmp_path / "cloud") as cloud:
        cloud.clock = lambda: time.time() + 3600
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file)
        await enroll_gateway(config, cloud)
        async with running_gateway(config) as gw:
            await gw.online()
            await wait_for(lambda: _has_alert(gw, "cloud_clock_skew"))


async def test_enrollment_token_is_never_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The token does not appear in any log line of enrollment and connection."""
    caplog.set_level("DEBUG")
    async with refcloud(tmp_path / "cloud") as cloud:
        token = await cloud.create_token("acme")
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file)
        await enroll(config.state.dir, cloud.url or "", "acme", Secret(token), cloud.ca_file)
        async with running_gateway(config) as gw:
            await gw.online()
    assert "Enrolled as" in caplog.text
    assert token not in caplog.text


@contextlib.asynccontextmanager
async def freezable_proxy(target_port: int) -> AsyncIterator[tuple[int, asyncio.Event]]:
    """A TCP forwarder to 127.0.0.1:target_port; setting the event black-holes traffic."""
    frozen = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if not frozen.is_set():
                    writer.write(data)
                    await writer.drain()
        writer.close()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        writers.extend([writer, up_writer])
        async with asyncio.TaskGroup() as tg:
            tg.create_task(pump(reader, up_writer))
            tg.create_task(pump(up_reader, writer))

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], frozen
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


async def test_black_holed_cloud_is_declared_dead_by_missed_pongs(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """When the path to the cloud silently drops everything, missed pongs end the
    connection (no wedge) and the link reconnects once the path works again."""
    async with refcloud(tmp_path / "cloud") as cloud, freezable_proxy(cloud.port) as (
            port, frozen):
        url = f"https://127.0.0.1:{port}"
        config = gateway_config(tmp_path, url, cloud.ca_file, ping_interval=0.2,
                                missed_pongs=2)
        await enroll_gateway(config, cloud)
        async with running_gateway(config) as gw:
            await gw.online()
            loop = asyncio.get_running_loop()
            frozen.set()
            started = loop.time()
            await wait_for(lambda: gw.link.state != LinkState.ONLINE, limit=5,
                           what="dead connection detected")
            # 2 missed pongs (0.4 s) + close handshake timeout (open_timeout, 2 s)
            assert loop.time() - started < 4.0
            assert "keepalive timeout" in caplog.text
            frozen.clear()
            await gw.online(limit=10)


async def test_cloud_that_never_answers_hello_or_push_does_not_wedge(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unanswered hello or event.push time out, the socket is replaced, nothing is lost."""
    real_hello, real_push = GatewaySession._hello, GatewaySession._event_push
    stall_hello, stall_push = asyncio.Event(), asyncio.Event()

    async def hello(self: GatewaySession, params: dict[str, object]) -> object:
        if stall_hello.is_set():
            await asyncio.Event().wait()
        return await real_hello(self, params)

    async def push(self: GatewaySession, params: dict[str, object]) -> object:
        if stall_push.is_set():
            await asyncio.Event().wait()
        return await real_push(self, params)

    monkeypatch.setattr(GatewaySession, "_hello", hello)
    monkeypatch.setattr(GatewaySession, "_event_push", push)
    async with refcloud(tmp_path / "cloud") as cloud:
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file, request_timeout=0.3)
        await enroll_gateway(config, cloud)
        stall_hello.set()
        async with running_gateway(config) as gw:
            await wait_for(lambda: cloud.connection_attempts >= 3, limit=10)
            assert gw.link.state != LinkState.ONLINE
            assert "hello failed" in gw.link.last_error
            stall_hello.clear()
            stall_push.set()
            await gw.online()
            await gw.enqueue("event", {"n": 1})
            attempts = cloud.connection_attempts
            await wait_for(lambda: cloud.connection_attempts > attempts, limit=10,
                           what="reconnect after unanswered event.push")
            stall_push.clear()
            await wait_for(lambda: _delivered(gw), limit=10)
            rows = await cloud.store.fetchall("SELECT seq FROM records WHERE kind = 'event'")
            assert len(rows) == 1
