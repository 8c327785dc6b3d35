"""Incremental HTTP/1.x request rewriter for the Launch proxy's HTTP mode.

Why: a LAN admin UI expects its own ``Host`` header, so each request head must be
rewritten; forcing ``Connection: close`` did that by making every request a new
connection, but then each request costs a stream open and a ticket. This rewriter
follows request boundaries on one kept-alive connection instead: it rewrites every
head, passes each body through unchanged (``Content-Length`` or chunked framing), and
after an ``Upgrade`` request (websockets) passes everything through. Responses are not
touched. Standard library only, no I/O: ``feed`` takes bytes, returns bytes.
"""

from __future__ import annotations

import enum
import re
from typing import Final

MAX_REQUEST_HEAD: Final = 64 << 10
"""Bytes of HTTP request head read before giving up (431)."""
MAX_CHUNK_LINE: Final = 4096
"""A chunk-size line (with extensions) or trailer line longer than this is refused."""
_HOP_HEADERS: Final = re.compile(rb"(?i)^(host|proxy-connection):")
_CHUNK_SIZE: Final = re.compile(rb"[0-9a-fA-F]{1,15}")


class BadRequest(Exception):
    """The client's bytes are not HTTP/1.x we can frame; ``status`` is the answer."""

    def __init__(self, status: bytes, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def rewrite_request_head(head: bytes, host_header: str) -> bytes:
    """Set ``Host`` to the LAN target's; every other header is kept (``Connection``
    too: the stream is the client's connection, one to one)."""
    lines = head[:-4].split(b"\r\n")
    kept = [line for line in lines[1:] if not _HOP_HEADERS.match(line)]
    return b"\r\n".join([lines[0], b"Host: " + host_header.encode("ascii"), *kept]) \
        + b"\r\n\r\n"


class _State(enum.Enum):
    HEAD = "head"
    BODY = "body"
    CHUNK_SIZE = "chunk-size"
    CHUNK_DATA = "chunk-data"
    TRAILER = "trailer"
    RAW = "raw"


class RequestRewriter:
    """Feed client bytes in any pieces; get them back with each request head rewritten."""

    def __init__(self, host_header: str) -> None:
        self.host_header = host_header
        self.requests = 0
        """Request heads rewritten so far."""
        self._state = _State.HEAD
        self._buffer = b""
        self._remaining = 0

    def feed(self, data: bytes) -> list[bytes]:
        """Rewritten output for ``data`` (raises ``BadRequest``; the connection is then
        unusable)."""
        out: list[bytes] = []
        data = self._buffer + data
        self._buffer = b""
        while data:
            data = self._step(data, out)
        return out

    def _step(self, data: bytes, out: list[bytes]) -> bytes:
        """Consume a prefix of ``data`` in the current state; return the rest."""
        state = self._state
        if state is _State.RAW:
            out.append(data)
            return b""
        if state in (_State.BODY, _State.CHUNK_DATA):
            piece = data[:self._remaining]
            out.append(piece)
            self._remaining -= len(piece)
            if self._remaining == 0:
                self._state = _State.CHUNK_SIZE if state is _State.CHUNK_DATA else _State.HEAD
            return data[len(piece):]
        if state is _State.HEAD:
            return self._head(data, out)
        return self._line(data, out)

    def _find(self, data: bytes, separator: bytes, limit: int, error: BadRequest) -> int:
        """Index of ``separator``, or -1 with ``data`` kept for the next ``feed``."""
        end = data.find(separator)
        if end < 0:
            if len(data) > limit:
                raise error
            self._buffer = data
        return end

    def _head(self, data: bytes, out: list[bytes]) -> bytes:
        end = self._find(data, b"\r\n\r\n", MAX_REQUEST_HEAD, BadRequest(
            b"431 Request Header Fields Too Large", "request head too long"))
        if end < 0:
            return b""
        head = data[:end + 4]
        out.append(rewrite_request_head(head, self.host_header))
        self.requests += 1
        self._frame_body(head)
        return data[end + 4:]

    def _frame_body(self, head: bytes) -> None:
        """Next state from the head's framing headers (RFC 9112 section 6)."""
        headers: dict[bytes, bytes] = {}
        for line in head[:-4].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        if b"upgrade" in headers:
            self._state = _State.RAW
        elif b"transfer-encoding" in headers:
            if not headers[b"transfer-encoding"].endswith(b"chunked"):
                raise BadRequest(b"501 Not Implemented", "transfer coding other than chunked")
            self._state = _State.CHUNK_SIZE
        elif b"content-length" in headers:
            length = headers[b"content-length"]
            if not length.isdigit() or len(length) > 15:
                raise BadRequest(b"400 Bad Request", "invalid Content-Length")
            self._remaining = int(length)
            self._state = _State.BODY if self._remaining else _State.HEAD
        else:
            self._state = _State.HEAD

    def _line(self, data: bytes, out: list[bytes]) -> bytes:
        """One chunk-size line or trailer line, passed through unchanged."""
        end = self._find(data, b"\r\n", MAX_CHUNK_LINE,
                         BadRequest(b"400 Bad Request", "chunk line too long"))
        if end < 0:
            return b""
        line = data[:end]
        out.append(data[:end + 2])
        if self._state is _State.TRAILER:
            if not line:
                self._state = _State.HEAD
            return data[end + 2:]
        size_text = line.split(b";", 1)[0].strip()
        if not _CHUNK_SIZE.fullmatch(size_text):
            raise BadRequest(b"400 Bad Request", "invalid chunk size")
        size = int(size_text, 16)
        if size == 0:
            self._state = _State.TRAILER
        else:
            self._remaining = size + 2  # the data and its CRLF
            self._state = _State.CHUNK_DATA
        return data[end + 2:]
