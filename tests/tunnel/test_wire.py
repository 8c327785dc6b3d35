"""Frame codec and ticket encoding: round trips and hard limits."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clgwd.protocol import wire
from clgwd.protocol.wire import ErrorCode, FrameType, ProtocolError


def test_data_roundtrip_keeps_header_small() -> None:
    """DATA costs 6 bytes of header and decodes to the same stream and payload."""
    frame = wire.encode_data(7, b"payload")
    assert len(frame) == wire.HEADER_SIZE + 7 == 13
    decoded = wire.decode(frame)
    assert (decoded.type, decoded.stream_id, bytes(decoded.body)) == (FrameType.DATA, 7,
                                                                     b"payload")


def test_control_frames_roundtrip() -> None:
    """Every control frame parses back to what was encoded."""
    assert wire.parse_u32(wire.decode(wire.encode_window(0, 12345))) == 12345
    assert wire.parse_rst(wire.decode(wire.encode_rst(3, ErrorCode.DENIED, "no"))) == (
        ErrorCode.DENIED, "no")
    assert wire.parse_ping(wire.decode(wire.encode_ping(99, pong=True))) == 99
    assert wire.parse_goaway(wire.decode(wire.encode_goaway(5, ErrorCode.SHUTDOWN, 100))) == (
        5, ErrorCode.SHUTDOWN, 100)
    request = wire.OpenRequest("t", "h", 443, "tk", 1 << 20)
    assert wire.OpenRequest.parse(wire.decode(request.encode(1))) == request
    assert wire.parse_open_ok(wire.decode(wire.encode_open_ok(1, 4096, "10.0.0.1:443"))) == (
        4096, "10.0.0.1:443")
    assert wire.parse_open_err(wire.decode(wire.encode_open_err(1, ErrorCode.LIMIT, "x"))) == (
        ErrorCode.LIMIT, "x")


@pytest.mark.parametrize(("data", "code"), [
    (b"", ErrorCode.FRAME_SIZE_ERROR),
    (b"\x00\x00\x00", ErrorCode.FRAME_SIZE_ERROR),
    (wire.HEADER.pack(0, 0, 1) + b"x" * (wire.MAX_DATA_PAYLOAD + 1), ErrorCode.FRAME_SIZE_ERROR),
    (wire.HEADER.pack(2, 0, 1) + b"x" * (wire.MAX_CONTROL_BODY + 1), ErrorCode.FRAME_SIZE_ERROR),
    (wire.HEADER.pack(42, 0, 1), ErrorCode.PROTOCOL_ERROR),
])
def test_decode_rejects_bad_frames(data: bytes, code: ErrorCode) -> None:
    """Oversized, truncated and unknown frames are protocol errors, never parsed."""
    with pytest.raises(ProtocolError) as err:
        wire.decode(data)
    assert err.value.code is code


@given(st.binary(max_size=200))
def test_decode_never_crashes(data: bytes) -> None:
    """Arbitrary bytes either decode or raise ProtocolError, never anything else."""
    try:
        frame = wire.decode(data)
    except ProtocolError:
        return
    if frame.type is FrameType.OPEN:
        with contextlib.suppress(ProtocolError):
            wire.OpenRequest.parse(frame)


def test_open_with_bad_fields_is_rejected() -> None:
    """OPEN needs typed fields; a boolean is not a port."""
    frame = wire.decode(wire._json_frame(FrameType.OPEN, 1, {
        "tunnel": "t", "host": "h", "port": True, "ticket": "x", "window": 10}))
    with pytest.raises(ProtocolError):
        wire.OpenRequest.parse(frame)


def test_ticket_pack_roundtrip() -> None:
    claims = wire.TicketClaims("gw", "t", "h", 1, "a", "j", 1.0, 2.0)
    raw, sig = wire.unpack_ticket(wire.pack_ticket(claims.canonical(), b"s" * 64))
    assert wire.TicketClaims.from_canonical(raw) == claims
    assert sig == b"s" * 64
    with pytest.raises(wire.TicketFormatError):
        wire.unpack_ticket("no-dot")
