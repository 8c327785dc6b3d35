"""Security suite: every refused stream is refused before any connection, and audited.

The LAN target counts its connections; a refusal must leave that count untouched.
Denied address forms are never connected to (traffic stays on 127.0.0.0/8).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from clgwd.protocol import wire
from clgwd.protocol.streams import StreamRefused
from clgwd.protocol.wire import ErrorCode, FrameType, OpenRequest, TicketClaims
from clgwd.refcloud.tunnels import TicketAuthority
from clgwd.tunnel.tickets import TicketRejected, TicketVerifier

from .conftest import GATEWAY_ID, MGMT_PORT, Harness, HarnessFactory, RecordingChannel


async def _refused(h: Harness, request: OpenRequest) -> StreamRefused:
    with pytest.raises(StreamRefused) as err:
        await h.open_raw(request)
    return err.value


async def _denial(h: Harness, reason: str) -> dict[str, Any]:
    records = await h.wait_audit("denied")
    matching = [r for r in records if r["reason"] == reason]
    assert matching, records
    return matching[-1]


@pytest.mark.parametrize(("tunnel", "host", "reason"), [
    ("wide", "127.0.0.1", "loopback"), ("wide", "0x7f.1", "loopback"),
    ("wide", "2130706433", "loopback"), ("wide", "017700000001", "loopback"),
    ("wide", "127.1", "loopback"), ("wide", "0.0.0.0", "this-network"),
    ("wide", "169.254.169.254", "link-local"), ("wide", "224.0.0.251", "multicast"),
    ("wide", "255.255.255.255", "broadcast"), ("wide6", "::1", "loopback"),
    ("wide6", "::ffff:127.0.0.1", "ipv4-mapped"), ("wide6", "fe80::1", "link-local"),
    ("wide6", "ff02::1", "multicast"), ("lan", "192.0.2.10", "host-not-allowed"),
    ("named", "ui.lan.test", "resolve-failed"),
])
async def test_denied_target_forms(harness: HarnessFactory, tunnel: str, host: str,
                                   reason: str) -> None:
    """Each always-denied form is refused by the allowlist, never connected, and audited."""
    async def no_dns(name: str, port: int) -> list[str]:
        raise OSError("resolution disabled in this test")

    h = await harness(resolver=no_dns)
    await h.start(tunnel)
    port = h.echo.port if tunnel != "lan" and tunnel != "named" else 443
    ticket = h.ticket(tunnel=tunnel, host=host, port=port)
    err = await _refused(h, OpenRequest(tunnel, host, port, ticket, 65536))
    assert err.code is ErrorCode.DENIED and err.reason == reason
    record = await _denial(h, reason)
    assert record["requested"] == f"{host}:{port}" and record["ticket_id"]
    assert h.echo.connections == 0


async def test_management_port_refused(harness: HarnessFactory) -> None:
    """The gateway's own HTTP port stays closed even on a loopback-allowed target."""
    h = await harness()
    await h.start("self")
    ticket = h.ticket(tunnel="self", port=MGMT_PORT)
    err = await _refused(h, OpenRequest("self", "127.0.0.1", MGMT_PORT, ticket, 65536))
    assert err.reason == "management-port"
    await _denial(h, "management-port")


async def test_dns_rebinding_connects_to_checked_address(harness: HarnessFactory) -> None:
    """First answer allowed and used; a later rebinding answer is refused, not followed."""
    answers = [["127.0.0.1"], ["169.254.169.254"]]
    calls: list[str] = []

    async def rebinding(name: str, port: int) -> list[str]:
        calls.append(name)
        return answers[min(len(calls), len(answers)) - 1]

    h = await harness(resolver=rebinding)
    await h.start("rebind")
    async with h.proxy(tunnel="rebind", host="rebind.lan.test") as proxy:
        reader, writer = await asyncio.open_connection(*proxy.address)
        writer.write(b"hi")
        assert await reader.readexactly(2) == b"hi"
        writer.close()
    assert calls == ["rebind.lan.test"]  # exactly one lookup for the connection
    opened = await h.wait_audit("stream_open")
    assert opened[0]["target"] == f"127.0.0.1:{h.echo.port}"
    ticket = h.ticket(tunnel="rebind", host="rebind.lan.test")
    err = await _refused(h, OpenRequest("rebind", "rebind.lan.test", h.echo.port, ticket, 65536))
    assert err.reason == "link-local"
    assert h.echo.connections == 1
    await _denial(h, "link-local")


def _sign_raw(authority: TicketAuthority, **overrides: Any) -> str:
    now = time.time()
    fields: dict[str, Any] = {"gateway": GATEWAY_ID, "tunnel": "echo", "host": "127.0.0.1",
                              "port": 1, "admin": "a@example.test", "jti": "j-raw",
                              "iat": now, "exp": now + 30}
    fields.update(overrides)
    return authority.sign(TicketClaims(**fields))


@pytest.mark.parametrize(("case", "reason"), [
    ("expired", "expired"), ("foreign", "wrong-gateway"), ("port", "wrong-target"),
    ("host", "wrong-target"), ("tunnel", "wrong-tunnel"), ("signature", "bad-signature"),
    ("garbage", "bad-signature"), ("lifetime", "lifetime-too-long"),
    ("future", "not-yet-valid"),
])
async def test_bad_tickets_refused(harness: HarnessFactory, case: str, reason: str) -> None:
    """Expired, foreign, mis-targeted and forged tickets never reach the LAN."""
    h = await harness()
    await h.start()
    await h.start("lan")
    port = h.echo.port
    now = time.time()
    ticket = {
        "expired": lambda: h.ticket(now=now - 120),
        "foreign": lambda: h.ticket(gateway="gw-someone-else"),
        "port": lambda: h.ticket(port=port + 1),
        "host": lambda: h.ticket(host="127.0.0.2"),
        "tunnel": lambda: h.ticket(tunnel="lan"),
        "signature": lambda: TicketAuthority().issue(gateway=GATEWAY_ID, tunnel="echo",
                                                     host="127.0.0.1", port=port, admin="x"),
        "garbage": lambda: "not.a-ticket",
        "lifetime": lambda: _sign_raw(h.authority, port=port, exp=now + 600),
        "future": lambda: _sign_raw(h.authority, port=port, iat=now + 600, exp=now + 630),
    }[case]()
    err = await _refused(h, OpenRequest("echo", "127.0.0.1", port, ticket, 65536))
    assert err.code is ErrorCode.DENIED and err.reason == reason
    await _denial(h, reason)
    assert h.echo.connections == 0


async def test_replayed_ticket_refused(harness: HarnessFactory) -> None:
    """A ticket opens one stream only; the second use is refused and audited."""
    h = await harness()
    await h.start()
    ticket = h.ticket()
    request = OpenRequest("echo", "127.0.0.1", h.echo.port, ticket, 65536)
    await h.open_raw(request)
    err = await _refused(h, request)
    assert err.reason == "replayed"
    await _denial(h, "replayed")
    assert h.echo.connections == 1


async def test_replay_cache_survives_restart(harness: HarnessFactory) -> None:
    """Ticket ids used before a restart are seeded back from the audit log."""
    h = await harness()
    await h.start()
    ticket = h.ticket()
    await h.open_raw(OpenRequest("echo", "127.0.0.1", h.echo.port, ticket, 65536))
    await h.wait_audit("stream_open")
    seen = await h.component.audit.recent_ticket_ids(time.time() - 300)
    fresh = TicketVerifier(h.authority.public_key_b64, GATEWAY_ID)
    fresh.remember(seen)
    with pytest.raises(TicketRejected) as err:
        fresh.verify(ticket, tunnel="echo", host="127.0.0.1", port=h.echo.port)
    assert err.value.reason == "replayed"


def test_replay_refused_with_more_than_64_remembered_tickets() -> None:
    """With over 64 unexpired tickets remembered, an early one is still refused: the
    prune drops only expired ids."""
    authority = TicketAuthority()
    now = 1_000_000.0
    verifier = TicketVerifier(authority.public_key_b64, GATEWAY_ID, clock=lambda: now)
    tickets = [authority.issue(gateway=GATEWAY_ID, tunnel="echo", host="127.0.0.1", port=7,
                               admin="ops", now=now, jti=f"t{i}") for i in range(70)]
    for ticket in tickets:
        verifier.verify(ticket, tunnel="echo", host="127.0.0.1", port=7)
    with pytest.raises(TicketRejected) as err:
        verifier.verify(tickets[0], tunnel="echo", host="127.0.0.1", port=7)
    assert err.value.reason == "replayed"


async def test_stopped_tunnel_refuses_streams(harness: HarnessFactory) -> None:
    h = await harness()
    err = await _refused(h, OpenRequest("echo", "127.0.0.1", h.echo.port, h.ticket(), 65536))
    assert err.reason == "tunnel-stopped"
    await _denial(h, "tunnel-stopped")


async def test_per_tunnel_stream_limit(harness: HarnessFactory) -> None:
    h = await harness(tunnel_extra=", max_streams: 1")
    await h.start()
    await h.open_raw(OpenRequest("echo", "127.0.0.1", h.echo.port, h.ticket(), 65536))
    err = await _refused(h, OpenRequest("echo", "127.0.0.1", h.echo.port, h.ticket(), 65536))
    assert err.reason == "tunnel-stream-limit"


# -- frame-level violations against the gateway (a fake cloud records the replies) -------

async def _raw_gateway(harness: HarnessFactory, **kwargs: Any) -> tuple[Harness,
                                                                       RecordingChannel]:
    h = await harness(link=False, **kwargs)
    channel = RecordingChannel()
    await h.component.mux.on_link_up(channel)
    return h, channel


async def _assert_session_failed(h: Harness, channel: RecordingChannel,
                                 code: ErrorCode) -> None:
    goaway = await channel.wait_for(FrameType.GOAWAY)
    assert wire.parse_goaway(goaway)[1] is code
    record = await _denial(h, "protocol-error")
    assert record["code"] == code.name


@pytest.mark.parametrize(("frame", "code"), [
    (wire.OpenRequest("echo", "127.0.0.1", 1, "x", 65536).encode(2), ErrorCode.PROTOCOL_ERROR),
    (wire.encode_open_ok(1, 65536, "x"), ErrorCode.PROTOCOL_ERROR),
    (wire.HEADER.pack(0, 0, 1) + b"x" * (wire.MAX_DATA_PAYLOAD + 1), ErrorCode.FRAME_SIZE_ERROR),
    (wire.HEADER.pack(77, 0, 0), ErrorCode.PROTOCOL_ERROR),
    (wire.encode_data(9, b"x"), ErrorCode.PROTOCOL_ERROR),
    (wire.encode_window(0, wire.MAX_WINDOW), ErrorCode.FLOW_CONTROL_ERROR),
])
async def test_protocol_violations_fail_the_session(harness: HarnessFactory, frame: bytes,
                                                    code: ErrorCode) -> None:
    """Gateway-side OPEN ids, replies to the gateway, oversized/unknown frames, unknown
    streams and window overflow: GOAWAY, and an audited denial."""
    h, channel = await _raw_gateway(harness)
    await h.component.mux.on_binary(frame)
    await _assert_session_failed(h, channel, code)


async def test_stream_window_overflow(harness: HarnessFactory) -> None:
    """A cloud sending beyond the stream window is cut off; nothing is queued unbounded."""
    h, channel = await _raw_gateway(harness, mode="stall",
                                    extra="  stream_window: 65536\n")
    await h.start()
    request = OpenRequest("echo", "127.0.0.1", h.echo.port, h.ticket(), 65536)
    await h.component.mux.on_binary(request.encode(1))
    await channel.wait_for(FrameType.OPEN_OK, 1)
    session = h.component.mux.session
    assert session is not None
    transport = session.streams[1].transport
    assert transport is not None
    transport.get_protocol().pause_writing()  # as asyncio does when the LAN socket is full
    await h.component.mux.on_binary(wire.encode_data(1, b"a" * 65536))
    await h.component.mux.on_binary(wire.encode_data(1, b"b"))
    await _assert_session_failed(h, channel, ErrorCode.FLOW_CONTROL_ERROR)
    assert not session.streams


async def test_frames_after_failure_are_ignored(harness: HarnessFactory) -> None:
    """After a protocol error the session accepts nothing until the link reconnects."""
    h, channel = await _raw_gateway(harness)
    await h.start()
    await h.component.mux.on_binary(wire.HEADER.pack(77, 0, 0))
    await channel.wait_for(FrameType.GOAWAY)
    request = OpenRequest("echo", "127.0.0.1", h.echo.port, h.ticket(), 65536)
    await h.component.mux.on_binary(request.encode(1))
    await asyncio.sleep(0.1)
    assert not any(f.type in (FrameType.OPEN_OK, FrameType.OPEN_ERR) for f in channel.frames)
    assert h.echo.connections == 0


async def test_fin_twice_is_a_protocol_error(harness: HarnessFactory) -> None:
    """A second FIN (data after the end) cannot be explained by a correct peer."""
    h, channel = await _raw_gateway(harness)
    await h.start()
    request = OpenRequest("echo", "127.0.0.1", h.echo.port, h.ticket(), 65536)
    await h.component.mux.on_binary(request.encode(1))
    await channel.wait_for(FrameType.OPEN_OK, 1)
    await h.component.mux.on_binary(wire.encode_fin(1))
    await h.component.mux.on_binary(wire.encode_fin(1))
    await _assert_session_failed(h, channel, ErrorCode.STREAM_CLOSED)


class _BlockedChannel(RecordingChannel):
    """A cloud that stopped reading: every send waits forever."""

    async def send_binary(self, data: bytes) -> None:
        await asyncio.Event().wait()


async def test_control_flood_against_a_non_reading_cloud(harness: HarnessFactory) -> None:
    """PINGs from a peer that never reads our PONGs cannot grow a queue without bound."""
    h = await harness(link=False)
    await h.component.mux.on_link_up(_BlockedChannel())
    for _ in range(10_000):
        await h.component.mux.on_binary(wire.encode_ping(1))
    session = h.component.mux.session
    assert session is not None and session.state.value == "failed"
    assert len(session._control) <= 8192 + 1
    record = await _denial(h, "protocol-error")
    assert record["code"] == "LIMIT"


async def test_open_flood_fails_the_session(harness: HarnessFactory) -> None:
    """More OPENs per second than allowed is a flood: GOAWAY and an audited denial,
    instead of one ticket check and audit row per OPEN without limit."""
    h, channel = await _raw_gateway(harness, extra="  max_open_rate: 5\n")
    for sid in range(1, 60, 2):
        await h.component.mux.on_binary(
            OpenRequest("echo", "127.0.0.1", h.echo.port, "x.y", 65536).encode(sid))
    await _assert_session_failed(h, channel, ErrorCode.LIMIT)
    assert h.echo.connections == 0


async def test_concurrent_opens_respect_tunnel_limit(harness: HarnessFactory) -> None:
    """Opens racing through admission still cannot exceed the tunnel's stream limit."""
    h = await harness(tunnel_extra=", max_streams: 2")
    await h.start()
    results = await asyncio.gather(*(
        h.open_raw(OpenRequest("echo", "127.0.0.1", h.echo.port, h.ticket(), 65536))
        for _ in range(5)), return_exceptions=True)
    refused = [r for r in results if isinstance(r, StreamRefused)]
    assert len(results) - len(refused) == 2
    assert {r.reason for r in refused} == {"tunnel-stream-limit"}
