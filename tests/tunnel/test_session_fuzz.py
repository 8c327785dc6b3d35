"""The session engine against hostile input: random frames never escape as exceptions."""

from __future__ import annotations

import asyncio
import random
import struct

from clgwd.protocol import wire
from clgwd.protocol.scheduler import SessionState
from clgwd.protocol.session import Role, Session
from clgwd.protocol.wire import FrameType

from .conftest import HarnessFactory, RecordingChannel


def _random_frame(rng: random.Random) -> bytes:
    ftype = rng.choice([*list(range(10)), 10, 200])
    sid = rng.choice([0, 1, 2, 3, 5, rng.randrange(2**32)])
    body_kind = rng.randrange(4)
    if body_kind == 0:
        body = b""
    elif body_kind == 1:
        body = struct.pack("!I", rng.randrange(2**32))
    elif body_kind == 2:
        body = rng.randbytes(rng.randrange(1, 64))
    else:
        body = b'{"tunnel":"x","host":"192.0.2.1","port":80,"ticket":"a.b","window":65536}'
    return wire.HEADER.pack(ftype, rng.randrange(256), sid) + body


async def test_random_frames_never_crash_a_session() -> None:
    """Every malformed input ends in a handled protocol error, never a raised one."""
    rng = random.Random(7)
    opened: list[int] = []
    failures = 0
    async with asyncio.TaskGroup() as tg:
        for _ in range(200):
            channel = RecordingChannel()
            session = Session(channel, Role.GATEWAY, tg,
                              on_open=lambda s, st, r: (opened.append(st.id),
                                                        s.refuse(st, wire.ErrorCode.DENIED, "x")))
            session.start()
            for _ in range(20):
                session.feed(_random_frame(rng))
            assert session.state in (SessionState.ACTIVE, SessionState.FAILED)
            failures += session.state is SessionState.FAILED
            session.close("test over")
    assert failures > 100  # the fuzzer really produced violations


async def test_ping_answered_and_goaway_stops_new_streams(harness: HarnessFactory) -> None:
    """PING gets PONG; after the cloud's GOAWAY new OPENs are refused and audited."""
    h = await harness(link=False)
    await h.start()
    channel = RecordingChannel()
    await h.component.mux.on_link_up(channel)
    await h.component.mux.on_binary(wire.encode_ping(42))
    pong = await channel.wait_for(FrameType.PONG)
    assert wire.parse_ping(pong) == 42
    await h.component.mux.on_binary(wire.encode_goaway(0, wire.ErrorCode.NO_ERROR))
    request = wire.OpenRequest("echo", "127.0.0.1", h.echo.port, h.ticket(), 65536)
    await h.component.mux.on_binary(request.encode(1))
    refused = await channel.wait_for(FrameType.OPEN_ERR, 1)
    assert wire.parse_open_err(refused)[1] == "going-away"
    denied = await h.wait_audit("denied")
    assert denied[0]["reason"] == "going-away"
    assert h.echo.connections == 0
