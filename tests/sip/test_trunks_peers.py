"""Trunk health against real SIP peers: sipp (UDP/TCP) and kamailio (TLS, test CA)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from clgwd.config import ClgwdConfig
from clgwd.sip.component import SipTrunks, alert_code
from clgwd.sip.message import Response, parse_message
from clgwd.sip.transport import StreamChannel
from clgwd.store import EventFilter, Store
from tests.sip.peers import kamailio, make_ca, make_self_signed, sipp_uas, start_sipp

pytestmark = [pytest.mark.peers, pytest.mark.timeout(90)]
FAST = {"interval": 1, "timeout": 1}


@contextlib.asynccontextmanager
async def running(config: ClgwdConfig) -> AsyncIterator[tuple[SipTrunks, Store]]:
    async with Store(config) as store, SipTrunks(config, store) as trunks:
        yield trunks, store


async def wait_state(trunks: SipTrunks, name: str, state: str, limit: float = 20) -> dict[str, Any]:
    async with asyncio.timeout(limit):
        while True:
            info = trunks.trunk_json(name)
            if info["state"] == state:
                return info
            await asyncio.sleep(0.05)


async def test_udp_trunk_down_after_three_failures_and_up_after_two_successes(
        tmp_path: Path, make_config: Callable[..., ClgwdConfig]) -> None:
    """sipp stops: down after 3 failed checks (alert raised, event recorded); sipp back:
    up after 2 good checks (alert cleared)."""
    async with running(make_config()) as (trunks, store):
        async with sipp_uas(tmp_path, "options_uas", "udp") as peer:
            await trunks.add_trunk({"name": "pbx-udp", "host": "127.0.0.1",
                                    "port": peer.port, **FAST}, "local:test")
            up = await wait_state(trunks, "pbx-udp", "up")
            assert up["rtt_ms"] is not None and up["status_code"] == 200
        down = await wait_state(trunks, "pbx-udp", "down")
        assert trunks._running["pbx-udp"].monitor.health.failures == 3
        assert "no answer within 1 s over UDP (2 transmissions)" in down["reason"]
        async with asyncio.timeout(5):  # the transition's transaction follows the state
            while [a.code for a in await store.alerts.active()] != [alert_code("pbx-udp")]:
                await asyncio.sleep(0.05)
        async with sipp_uas(tmp_path, "options_uas", "udp", peer.port):
            started = time.monotonic()
            await wait_state(trunks, "pbx-udp", "up")
            assert trunks._running["pbx-udp"].monitor.health.successes == 2
            assert time.monotonic() - started > 1  # needed a second success
        async with asyncio.timeout(5):
            while await store.alerts.active():
                await asyncio.sleep(0.05)
        events = await store.history.query(EventFilter(asset="SIP trunk"))
        states = [e.core.get("state") for e in reversed(events) if e.actor.endswith("monitor")]
        assert states == ["up", "down", "up"]


async def test_tcp_connection_is_reused_and_reopened(
        tmp_path: Path, make_config: Callable[..., ClgwdConfig]) -> None:
    """Over TCP, checks share one connection; when sipp goes, the reason says refused;
    when it is back, a new connection brings the trunk up."""
    async with running(make_config()) as (trunks, _):
        async with sipp_uas(tmp_path, "options_uas", "tcp") as peer:
            await trunks.add_trunk({"name": "pbx-tcp", "host": "127.0.0.1",
                                    "port": peer.port, "transport": "tcp", **FAST}, "local:test")
            await wait_state(trunks, "pbx-tcp", "up")
            channel = trunks._running["pbx-tcp"].monitor.channel
            assert isinstance(channel, StreamChannel)
            writer = channel._writer
            await trunks.check("pbx-tcp")
            await trunks.check("pbx-tcp")
            assert channel._writer is writer and writer is not None
        down = await wait_state(trunks, "pbx-tcp", "down")
        assert re.search(r"TCP connection (refused|lost)|closed by the peer", down["reason"])
        async with sipp_uas(tmp_path, "options_uas", "tcp", peer.port):
            await wait_state(trunks, "pbx-tcp", "up")
        assert channel._writer is not writer


async def test_503_is_a_failure_and_retry_after_delays_the_next_check(
        tmp_path: Path, make_config: Callable[..., ClgwdConfig]) -> None:
    """503 with Retry-After: 3 counts as a failure and the next OPTIONS waits 3 s, not
    the 1 s interval."""
    async with running(make_config()) as (trunks, _), \
            sipp_uas(tmp_path, "options_503", "udp") as peer:
        await trunks.add_trunk({"name": "busy", "host": "127.0.0.1", "port": peer.port,
                                **FAST}, "local:test")
        info = await trunks.check("busy")
        assert info["state"] == "unknown" and info["status_code"] == 503
        assert "503 Service Unavailable; Retry-After 3 s" in info["reason"]
        first = info["last_check"]
        async with asyncio.timeout(10):
            while trunks.trunk_json("busy")["last_check"] == first:
                await asyncio.sleep(0.05)
        assert trunks.trunk_json("busy")["last_check"] - first >= 2.9


async def test_407_is_answered_with_digest_credentials(
        tmp_path: Path, make_config: Callable[..., ClgwdConfig]) -> None:
    """kamailio asks for proxy authentication (407, qop=auth); the right password gets
    200 (up), a wrong one is reported as an authentication failure, and the password is
    never shown."""
    ca = await asyncio.to_thread(make_ca, tmp_path)
    async with running(make_config()) as (trunks, _), \
            kamailio(tmp_path, ca, auth=True) as kam:
        base = {"name": "auth", "host": "127.0.0.1", "port": kam.port, "transport": "tcp",
                "username": "trunkuser", "interval": 30}
        await trunks.add_trunk({**base, "password": "s3cret-pass"}, "local:test")
        info = await trunks.check("auth")
        assert (info["state"], info["status_code"]) == ("up", 200), info
        await trunks.add_trunk({**base, "password": "wrong-pass"}, "local:test", replace=True)
        info = await trunks.check("auth")
        assert info["status_code"] == 407
        assert "authentication failed" in info["reason"] and "trunkuser" in info["reason"]
        assert "wrong-pass" not in str(trunks.listing())
        assert info["password_set"] is True


async def test_tls_to_kamailio_verified_by_the_test_ca(
        tmp_path: Path, make_config: Callable[..., ClgwdConfig]) -> None:
    """TLS with the configured CA bundle and the certificate's name: up. A name the
    certificate does not carry, or no CA: down, and the reason names the TLS check."""
    ca = await asyncio.to_thread(make_ca, tmp_path)
    async with running(make_config()) as (trunks, _), kamailio(tmp_path, ca) as kam:
        base = {"host": "127.0.0.1", "port": kam.tls_port, "transport": "tls",
                "ca_file": str(ca.ca), "interval": 30, "timeout": 3}
        await trunks.add_trunk({"name": "tls-ok", "server_name": "localhost", **base}, "t")
        info = await trunks.check("tls-ok")
        assert (info["state"], info["status_code"]) == ("up", 200), info
        await trunks.add_trunk({"name": "tls-name", "server_name": "pbx.example.com", **base},
                               "t")
        for _ in range(3):
            info = await trunks.check("tls-name")
        assert info["state"] == "down"
        assert "TLS: certificate rejected: Hostname mismatch" in info["reason"]
        await trunks.add_trunk({**base, "name": "tls-noca", "ca_file": None}, "t")
        info = await trunks.check("tls-noca")
        assert "TLS: certificate rejected: unable to get local issuer certificate" in \
            info["reason"]


async def test_captured_sipp_and_kamailio_answers_parse(
        tmp_path: Path, make_config: Callable[..., ClgwdConfig]) -> None:
    """The answers sipp logged and a raw kamailio answer parse with every field."""
    ca = await asyncio.to_thread(make_ca, tmp_path)
    async with running(make_config()) as (trunks, _):
        async with kamailio(tmp_path, ca) as kam:
            await trunks.add_trunk({"name": "kam", "host": "127.0.0.1", "port": kam.port,
                                    "interval": 30}, "t")
            assert (await trunks.check("kam"))["state"] == "up"
            loop = asyncio.get_running_loop()
            got: asyncio.Future[bytes] = loop.create_future()

            class Proto(asyncio.DatagramProtocol):
                def datagram_received(self, data: bytes, addr: Any) -> None:
                    if not got.done():
                        got.set_result(data)

            transport, _ = await loop.create_datagram_endpoint(
                Proto, remote_addr=("127.0.0.1", kam.port))
            try:
                lport = transport.get_extra_info("sockname")[1]
                transport.sendto((
                    f"OPTIONS sip:127.0.0.1:{kam.port} SIP/2.0\r\nVia: SIP/2.0/UDP "
                    f"127.0.0.1:{lport};branch=z9hG4bK-capture;rport\r\nMax-Forwards: 70\r\n"
                    "From: <sip:t@127.0.0.1>;tag=t1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: cap-1\r\n"
                    "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode())
                answer = parse_message(await asyncio.wait_for(got, 5))
            finally:
                transport.close()
            assert isinstance(answer, Response) and answer.status == 200
            assert "kamailio" in (answer.headers.get("Server") or "")
            assert answer.call_id == "cap-1" and answer.top_via.branch == "z9hG4bK-capture"
        peer = await start_sipp(tmp_path, "options_uas", "udp", 0 or _port())
        try:
            await trunks.add_trunk({"name": "sipp", "host": "127.0.0.1", "port": peer.port,
                                    "interval": 30}, "t")
            assert (await trunks.check("sipp"))["state"] == "up"
        finally:
            await peer.stop()
    log = await asyncio.to_thread(peer.messages.read_text)
    blocks = [b.split(":\n\n", 1)[1].strip("\n").replace("\n", "\r\n") + "\r\n\r\n"
              for b in log.split("-" * 47) if "message sent" in b]
    assert blocks
    for block in blocks:
        msg = parse_message(block.encode())
        assert isinstance(msg, Response) and msg.to_tag and msg.cseq[1] == "OPTIONS"


def _port() -> int:
    from tests.sip.peers import free_port

    return free_port()


async def test_self_signed_only_when_allowed_and_expired_certificates_fail(
        tmp_path: Path, make_config: Callable[..., ClgwdConfig]) -> None:
    """A self-signed kamailio: refused by default, accepted with allow_self_signed (its
    name still checked); an expired certificate fails naming the expiry."""
    own = await asyncio.to_thread(make_self_signed, tmp_path, "own")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with running(make_config()) as (trunks, _):
        async with kamailio(tmp_path / "a", own) as kam:
            base = {"host": "127.0.0.1", "port": kam.tls_port, "transport": "tls",
                    "interval": 30, "timeout": 3}
            await trunks.add_trunk({"name": "strict", **base}, "t")
            info = await trunks.check("strict")
            assert "TLS: certificate rejected: self-signed certificate" in info["reason"]
            await trunks.add_trunk({"name": "allowed", "allow_self_signed": True, **base}, "t")
            assert (await trunks.check("allowed"))["state"] == "up"
            await trunks.add_trunk({"name": "misnamed", "allow_self_signed": True,
                                    "server_name": "pbx.example.com", **base}, "t")
            info = await trunks.check("misnamed")
            assert "not valid for 'pbx.example.com'" in info["reason"]
        old = await asyncio.to_thread(make_self_signed, tmp_path, "old", expired=True)
        async with kamailio(tmp_path / "b", old) as kam:
            await trunks.add_trunk({"name": "expired", "host": "127.0.0.1",
                                    "port": kam.tls_port, "transport": "tls",
                                    "ca_file": str(old.ca), "interval": 30, "timeout": 3}, "t")
            info = await trunks.check("expired")
            assert "TLS: certificate rejected: certificate has expired" in info["reason"]
            await trunks.add_trunk({"name": "expired2", "host": "127.0.0.1",
                                    "port": kam.tls_port, "transport": "tls",
                                    "allow_self_signed": True, "interval": 30,
                                    "timeout": 3}, "t")
            info = await trunks.check("expired2")
            assert "outside its validity" in info["reason"]
