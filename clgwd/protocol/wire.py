"""The tunnel wire protocol: frame codec and ticket encoding, shared by both ends.

One frame travels in one binary websocket message. Every frame starts with a 6-byte
header ``type u8 | flags u8 | stream_id u32`` (network order) followed by a
type-specific body. The header is fixed and small because DATA frames dominate and
Python pays per byte copied and per struct call, not per field.

This module (with ``session.py``) is the *protocol* the reference cloud may import: it
imports nothing from the gateway (no config, no store), only the standard library.

Stream ids: only the cloud opens streams and it uses odd ids, strictly increasing. An
OPEN with an even id (the gateway's half of the id space) or an OPEN received by the
cloud is a protocol error: the gateway never opens connections towards the cloud.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final, TypeGuard

HEADER: Final = struct.Struct("!BBI")
HEADER_SIZE: Final = HEADER.size
MAX_DATA_PAYLOAD: Final = 65536
"""Largest DATA payload; a bigger DATA frame is a FRAME_SIZE protocol error."""
MAX_CONTROL_BODY: Final = 8192
"""Largest body of any non-DATA frame (OPEN carries the ticket, which is small)."""
MAX_FRAME_SIZE: Final = HEADER_SIZE + MAX_DATA_PAYLOAD
INITIAL_CONNECTION_WINDOW: Final = 65536
"""Connection credit each side starts with; a WINDOW on stream 0 raises it."""
MAX_WINDOW: Final = 2**31 - 1
MAX_STREAM_ID: Final = 2**32 - 1

_U32: Final = struct.Struct("!I")
_PING: Final = struct.Struct("!Q")
_GOAWAY: Final = struct.Struct("!IIII")  # last_stream_id, code, reconnect_after_ms, reserved


class FrameType(IntEnum):
    """Frame types; unknown types are a protocol error (no silent skipping)."""

    DATA = 0
    WINDOW = 1
    OPEN = 2
    OPEN_OK = 3
    OPEN_ERR = 4
    FIN = 5
    RST = 6
    PING = 7
    PONG = 8
    GOAWAY = 9


class ErrorCode(IntEnum):
    """Reasons carried by RST, OPEN_ERR and GOAWAY."""

    NO_ERROR = 0
    PROTOCOL_ERROR = 1
    FLOW_CONTROL_ERROR = 2
    FRAME_SIZE_ERROR = 3
    REFUSED = 4
    CANCEL = 5
    TIMEOUT = 6
    CONNECT_FAILED = 7
    DENIED = 8
    INTERNAL_ERROR = 9
    STREAM_CLOSED = 10
    SHUTDOWN = 11
    LIMIT = 12

    @classmethod
    def parse(cls, value: int) -> ErrorCode:
        """Map an unknown code from the peer to PROTOCOL_ERROR instead of raising."""
        try:
            return cls(value)
        except ValueError:
            return cls.PROTOCOL_ERROR


CONTROL_TYPES: Final = frozenset(FrameType) - {FrameType.DATA}


class ProtocolError(Exception):
    """The peer broke the protocol; the whole session is torn down (GOAWAY)."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded frame; ``body`` is a view into the received message (no copy)."""

    type: FrameType
    flags: int
    stream_id: int
    body: memoryview


def decode(data: bytes | bytearray | memoryview) -> Frame:
    """Parse one message into a frame, enforcing the size limits before anything else."""
    size = len(data)
    if size < HEADER_SIZE:
        raise ProtocolError(ErrorCode.FRAME_SIZE_ERROR, f"frame of {size} bytes has no header")
    if size > MAX_FRAME_SIZE:
        raise ProtocolError(ErrorCode.FRAME_SIZE_ERROR,
                            f"frame of {size} bytes exceeds {MAX_FRAME_SIZE}")
    type_byte, flags, stream_id = HEADER.unpack_from(data)
    try:
        ftype = FrameType(type_byte)
    except ValueError:
        raise ProtocolError(ErrorCode.PROTOCOL_ERROR, f"unknown frame type {type_byte}") from None
    if ftype is not FrameType.DATA and size - HEADER_SIZE > MAX_CONTROL_BODY:
        raise ProtocolError(ErrorCode.FRAME_SIZE_ERROR,
                            f"{ftype.name} body of {size - HEADER_SIZE} bytes is too large")
    return Frame(ftype, flags, stream_id, memoryview(data)[HEADER_SIZE:])


def _header(ftype: FrameType, stream_id: int, flags: int = 0) -> bytes:
    return HEADER.pack(ftype, flags, stream_id)


def encode_data(stream_id: int, payload: bytes | bytearray | memoryview) -> bytes:
    """DATA frame; the caller keeps ``payload`` within ``MAX_DATA_PAYLOAD``."""
    return HEADER.pack(FrameType.DATA, 0, stream_id) + payload


def encode_window(stream_id: int, increment: int) -> bytes:
    """WINDOW frame: grant ``increment`` more bytes of credit (stream 0 = connection)."""
    return _header(FrameType.WINDOW, stream_id) + _U32.pack(increment)


def encode_fin(stream_id: int) -> bytes:
    return _header(FrameType.FIN, stream_id)


def encode_rst(stream_id: int, code: ErrorCode, reason: str = "") -> bytes:
    return _header(FrameType.RST, stream_id) + _U32.pack(code) + reason.encode()[:512]


def encode_ping(opaque: int, *, pong: bool = False) -> bytes:
    ftype = FrameType.PONG if pong else FrameType.PING
    return _header(ftype, 0) + _PING.pack(opaque)


def encode_goaway(last_stream_id: int, code: ErrorCode, reconnect_after_ms: int = 0) -> bytes:
    return _header(FrameType.GOAWAY, 0) + _GOAWAY.pack(last_stream_id, code,
                                                       reconnect_after_ms, 0)


def _json_frame(ftype: FrameType, stream_id: int, body: dict[str, Any]) -> bytes:
    return _header(ftype, stream_id) + json.dumps(body, separators=(",", ":")).encode()


def parse_json_body(frame: Frame) -> dict[str, Any]:
    """Body of OPEN / OPEN_OK / OPEN_ERR: a JSON object (they are rare, so JSON is fine)."""
    try:
        value = json.loads(bytes(frame.body))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ProtocolError(ErrorCode.PROTOCOL_ERROR,
                            f"{frame.type.name} body is not JSON") from None
    if not isinstance(value, dict):
        raise ProtocolError(ErrorCode.PROTOCOL_ERROR, f"{frame.type.name} body is not an object")
    return value


def parse_u32(frame: Frame) -> int:
    """The u32 at the start of a WINDOW or RST body."""
    if len(frame.body) < 4:
        raise ProtocolError(ErrorCode.FRAME_SIZE_ERROR, f"{frame.type.name} body too short")
    value: int = _U32.unpack_from(frame.body)[0]
    return value


def parse_rst(frame: Frame) -> tuple[ErrorCode, str]:
    code = ErrorCode.parse(parse_u32(frame))
    return code, bytes(frame.body[4:]).decode(errors="replace")


def parse_ping(frame: Frame) -> int:
    if len(frame.body) != _PING.size:
        raise ProtocolError(ErrorCode.FRAME_SIZE_ERROR, f"{frame.type.name} body must be 8 bytes")
    value: int = _PING.unpack_from(frame.body)[0]
    return value


def parse_goaway(frame: Frame) -> tuple[int, ErrorCode, int]:
    if len(frame.body) != _GOAWAY.size:
        raise ProtocolError(ErrorCode.FRAME_SIZE_ERROR, "GOAWAY body must be 16 bytes")
    last, code, after, _ = _GOAWAY.unpack_from(frame.body)
    return last, ErrorCode.parse(code), after


@dataclass(frozen=True)
class OpenRequest:
    """Body of OPEN: which tunnel and target, the ticket, and the opener's receive window."""

    tunnel: str
    host: str
    port: int
    ticket: str
    window: int

    def encode(self, stream_id: int) -> bytes:
        return _json_frame(FrameType.OPEN, stream_id, {
            "tunnel": self.tunnel, "host": self.host, "port": self.port,
            "ticket": self.ticket, "window": self.window})

    @classmethod
    def parse(cls, frame: Frame) -> OpenRequest:
        body = parse_json_body(frame)
        tunnel, host, port = body.get("tunnel"), body.get("host"), body.get("port")
        ticket, window = body.get("ticket"), body.get("window")
        if not (isinstance(tunnel, str) and isinstance(host, str) and isinstance(ticket, str)):
            raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "OPEN needs tunnel, host and ticket")
        if not (_is_int(port) and _is_int(window) and 0 < window <= MAX_WINDOW):
            raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "OPEN needs integer port and window")
        return cls(tunnel, host, port, ticket, window)


def encode_open_ok(stream_id: int, window: int, peer: str) -> bytes:
    """OPEN_OK: the acceptor's receive window and the address actually connected."""
    return _json_frame(FrameType.OPEN_OK, stream_id, {"window": window, "peer": peer})


def parse_open_ok(frame: Frame) -> tuple[int, str]:
    body = parse_json_body(frame)
    window, peer = body.get("window"), body.get("peer", "")
    if not (_is_int(window) and 0 < window <= MAX_WINDOW and isinstance(peer, str)):
        raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "OPEN_OK needs an integer window")
    return window, peer


def encode_open_err(stream_id: int, code: ErrorCode, reason: str) -> bytes:
    return _json_frame(FrameType.OPEN_ERR, stream_id, {"code": int(code), "reason": reason})


def parse_open_err(frame: Frame) -> tuple[ErrorCode, str]:
    body = parse_json_body(frame)
    code, reason = body.get("code"), body.get("reason", "")
    if not (_is_int(code) and isinstance(reason, str)):
        raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "OPEN_ERR needs code and reason")
    return ErrorCode.parse(code), reason


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


# -- tickets ------------------------------------------------------------------------------

TICKET_VERSION: Final = 1
MAX_TICKET_LIFETIME: Final = 60.0
"""A ticket may be valid for at most this many seconds (``exp - iat``)."""


class TicketFormatError(ValueError):
    """The ticket is not well formed (before any signature check)."""


@dataclass(frozen=True)
class TicketClaims:
    """What a tunnel-authority ticket asserts; signed as canonical JSON."""

    gateway: str
    tunnel: str
    host: str
    port: int
    admin: str
    jti: str
    iat: float
    exp: float

    def canonical(self) -> bytes:
        """The exact bytes that are signed: sorted keys, no whitespace, version tag."""
        return json.dumps({
            "v": TICKET_VERSION, "gw": self.gateway, "tun": self.tunnel, "host": self.host,
            "port": self.port, "admin": self.admin, "jti": self.jti, "iat": self.iat,
            "exp": self.exp}, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_canonical(cls, raw: bytes) -> TicketClaims:
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise TicketFormatError("claims are not JSON") from None
        if not isinstance(body, dict) or body.get("v") != TICKET_VERSION:
            raise TicketFormatError("unknown ticket version")
        strings = ("gw", "tun", "host", "admin", "jti")
        if not all(isinstance(body.get(k), str) for k in strings):
            raise TicketFormatError("ticket claims must be strings")
        if not _is_int(body.get("port")):
            raise TicketFormatError("ticket port must be an integer")
        if not all(isinstance(body.get(k), int | float) and not isinstance(body.get(k), bool)
                   for k in ("iat", "exp")):
            raise TicketFormatError("ticket times must be numbers")
        return cls(body["gw"], body["tun"], body["host"], body["port"], body["admin"],
                   body["jti"], float(body["iat"]), float(body["exp"]))


def pack_ticket(claims_raw: bytes, signature: bytes) -> str:
    """``base64url(claims) '.' base64url(signature)``, unpadded."""
    return f"{_b64(claims_raw)}.{_b64(signature)}"


def unpack_ticket(ticket: str) -> tuple[bytes, bytes]:
    """Split a ticket into the signed claim bytes and the signature."""
    if len(ticket) > 4096 or ticket.count(".") != 1:
        raise TicketFormatError("ticket must be two base64url parts")
    head, sig = ticket.split(".")
    try:
        return _unb64(head), _unb64(sig)
    except (binascii.Error, ValueError):
        raise TicketFormatError("ticket is not base64url") from None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
