"""SIP messages (RFC 3261 §7, §18.3, §20): parse and build requests and responses.

Strict and bounded, because the answers come from the network: a message is at most
``MAX_MESSAGE`` bytes, with at most ``MAX_HEADERS`` header fields of at most ``MAX_LINE``
bytes each (after unfolding). Anything else is a ``SipParseError`` (a ``ValueError``)
whose message says what was wrong; nothing else escapes ``parse_message`` or
``StreamFramer.feed``.

Understood: the request and status lines, compact header forms (``v``, ``i``, ``l`` ...),
folded header lines (a line starting with SP/HT continues the previous one), header
fields repeated or listing several values separated by commas (``Via``, ``Allow`` ...),
``Content-Length`` framing (mandatory on streams, RFC 3261 §18.3), the mandatory
``Via``/``From``/``To``/``Call-ID``/``CSeq`` fields, the Via branch with its
``z9hG4bK`` magic cookie, and the ``tag`` parameters of From and To.

Why our own: the kept libraries were weighed against this list (see the commit that
added this module): sipmessage accepts status 99999, unbounded sizes and no folding and
raises ``KeyError`` on some mutated inputs; aiosipua skips malformed lines and accepts
almost any mutation; sippy is a whole threaded stack. The parser we need is small.
"""

from __future__ import annotations

import abc
import functools
import re
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

MAX_MESSAGE: Final = 65_535
"""Largest message accepted (a UDP datagram's limit; answers to OPTIONS are small)."""
MAX_HEADERS: Final = 128
MAX_LINE: Final = 8192
MAGIC_COOKIE: Final = "z9hG4bK"
SIP_VERSION: Final = "SIP/2.0"

COMPACT_FORMS: Final = {
    "a": "Accept-Contact", "b": "Referred-By", "c": "Content-Type", "d": "Request-Disposition",
    "e": "Content-Encoding", "f": "From", "i": "Call-ID", "j": "Reject-Contact",
    "k": "Supported", "l": "Content-Length", "m": "Contact", "n": "Identity-Info",
    "o": "Event", "r": "Refer-To", "s": "Subject", "t": "To", "u": "Allow-Events",
    "v": "Via", "x": "Session-Expires", "y": "Identity",
}
_CANONICAL: Final = {name.lower(): name for name in (
    *COMPACT_FORMS.values(), "CSeq", "Max-Forwards", "Allow", "Accept", "Accept-Encoding",
    "Accept-Language", "User-Agent", "Server", "Retry-After", "WWW-Authenticate",
    "Authorization", "Proxy-Authenticate", "Proxy-Authorization", "Record-Route", "Route",
    "Require", "Proxy-Require", "Unsupported", "Warning", "Date", "Expires", "Timestamp",
    "Organization", "Priority", "Reply-To", "In-Reply-To", "Alert-Info", "Call-Info",
    "Error-Info", "MIME-Version", "Min-Expires", "Content-Disposition", "Content-Language",
    "Authentication-Info",
)}
MULTI_VALUE: Final = frozenset(name.lower() for name in (
    "Via", "Contact", "Route", "Record-Route", "Allow", "Supported", "Require",
    "Proxy-Require", "Unsupported", "Accept", "Accept-Encoding", "Accept-Language",
    "Allow-Events", "Content-Encoding", "Content-Language", "Warning", "Call-Info",
    "Alert-Info", "Error-Info", "In-Reply-To",
))
"""Fields whose values may be joined by commas (RFC 3261 §7.3.1); others never split
(WWW-Authenticate carries commas inside one value)."""
_SINGLE: Final = ("call-id", "cseq", "from", "to", "content-length", "max-forwards")

_TOKEN: Final = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_SCHEME_URI: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[\x21-\x7e]+")
_STATUS_LINE: Final = re.compile(r"SIP/2\.0 ([1-6][0-9][0-9]) ([^\x00-\x08\x0a-\x1f\x7f]*)")
_CSEQ: Final = re.compile(r"([0-9]{1,10})[ \t]+([A-Za-z0-9\-.!%*_+`'~]+)")
_VIA: Final = re.compile(r"SIP[ \t]*/[ \t]*2\.0[ \t]*/[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)[ \t]+"
                         r"([^;, \t]+)(.*)", re.DOTALL)
_CSEQ_MAX: Final = 2 ** 31 - 1


class SipParseError(ValueError):
    """The bytes are not a SIP message we accept; the message says why."""


def _canonical(name: str) -> str:
    lower = name.lower()
    if lower in COMPACT_FORMS:
        return COMPACT_FORMS[lower]
    return _CANONICAL.get(lower, name)


def _split_commas(value: str) -> list[str]:
    """Split at commas outside quotes and angle brackets."""
    if '"' not in value and "<" not in value:
        return [part for part in (p.strip() for p in value.split(",")) if part]
    out: list[str] = []
    start, quoted, angle, i = 0, False, False, 0
    while i < len(value):
        ch = value[i]
        if quoted and ch == "\\":
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            angle = True
        elif not quoted and ch == ">":
            angle = False
        elif ch == "," and not quoted and not angle:
            out.append(value[start:i].strip())
            start = i + 1
        i += 1
    out.append(value[start:].strip())
    return [part for part in out if part]


class Headers:
    """Header fields in order, names canonical (``v`` -> ``Via``), case-insensitive lookup."""

    def __init__(self, fields: Sequence[tuple[str, str]] = ()) -> None:
        self._fields: list[tuple[str, str]] = [(_canonical(n), v) for n, v in fields]
        self._keys: list[str] = [n.lower() for n, _ in self._fields]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def add(self, name: str, value: str) -> None:
        canonical = _canonical(name)
        self._fields.append((canonical, value))
        self._keys.append(canonical.lower())

    def set(self, name: str, value: str) -> None:
        """Replace every field of this name by one (kept at the first one's place)."""
        canonical = _canonical(name)
        lower = canonical.lower()
        index = self._keys.index(lower) if lower in self._keys else len(self._fields)
        kept = [(f, k) for f, k in zip(self._fields, self._keys, strict=True) if k != lower]
        kept.insert(min(index, len(kept)), ((canonical, value), lower))
        self._fields = [f for f, _ in kept]
        self._keys = [k for _, k in kept]

    def get(self, name: str) -> str | None:
        """The first value of ``name`` (the first element when it lists several)."""
        values = self.get_all(name)
        return values[0] if values else None

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, comma lists split for the fields that allow them."""
        lower = _canonical(name).lower()
        values = [v for (_, v), k in zip(self._fields, self._keys, strict=True) if k == lower]
        if lower not in MULTI_VALUE:
            return values
        return [part for value in values for part in _split_commas(value)]

    def count(self, name: str) -> int:
        return self._keys.count(_canonical(name).lower())


@dataclass(frozen=True)
class Via:
    """One Via value: ``SIP/2.0/UDP host:port;branch=z9hG4bK...;rport``."""

    transport: str
    sent_by: str
    params: dict[str, str | None]

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def rfc3261_branch(self) -> bool:
        """Whether the branch carries RFC 3261's magic cookie (transactions match on it)."""
        return bool(self.branch and self.branch.startswith(MAGIC_COOKIE))


def _params(text: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for raw in text.split(";"):
        part = raw.strip()
        if not part:
            continue
        key, eq, value = part.partition("=")
        out[key.strip().lower()] = value.strip().strip('"') if eq else None
    return out


def parse_via(value: str) -> Via:
    match = _VIA.fullmatch(value.strip())
    if match is None:
        raise SipParseError(f"Via: not 'SIP/2.0/<transport> <host>': {value[:80]!r}")
    return Via(match.group(1).upper(), match.group(2), _params(match.group(3)))


def address_tag(value: str) -> str | None:
    """The ``tag`` parameter of a From/To value (after the ``<...>`` if there is one)."""
    if "<" in value:
        _, _, rest = value.partition(">")
    else:
        _, _, rest = value.partition(";")
        rest = ";" + rest
    return _params(rest).get("tag")


@dataclass
class _Message(abc.ABC):
    headers: Headers
    body: bytes

    def _check(self) -> None:
        for name in _SINGLE:
            if self.headers.count(name) > 1:
                raise SipParseError(f"header {_canonical(name)} appears more than once")
        for name in ("Via", "From", "To", "Call-ID", "CSeq"):
            if not self.headers.get(name):
                raise SipParseError(f"mandatory header {name} is missing")
        self.cseq  # noqa: B018 - validates
        self.top_via  # noqa: B018 - validates

    @property
    def call_id(self) -> str:
        return self.headers.get("Call-ID") or ""

    @functools.cached_property
    def cseq(self) -> tuple[int, str]:
        """(number, method); read once (a message is not changed after it is built)."""
        value = self.headers.get("CSeq") or ""
        match = _CSEQ.fullmatch(value.strip())
        if match is None or int(match.group(1)) > _CSEQ_MAX:
            raise SipParseError(f"CSeq: not '<number below 2**31> <method>': {value[:80]!r}")
        return int(match.group(1)), match.group(2)

    @functools.cached_property
    def top_via(self) -> Via:
        values = self.headers.get_all("Via")
        if not values:
            raise SipParseError("mandatory header Via is missing")
        return parse_via(values[0])

    @property
    def from_tag(self) -> str | None:
        return address_tag(self.headers.get("From") or "")

    @property
    def to_tag(self) -> str | None:
        return address_tag(self.headers.get("To") or "")

    @abc.abstractmethod
    def _head(self) -> str:
        """The start line (request line or status line)."""

    def to_bytes(self) -> bytes:
        """Wire form; Content-Length always written and always right."""
        length = str(len(self.body))
        if self.headers.get_all("Content-Length") != [length]:
            self.headers.set("Content-Length", length)
        lines = [self._head(), *(f"{n}: {v}" for n, v in self.headers), "", ""]
        return "\r\n".join(lines).encode() + self.body


@dataclass
class Request(_Message):
    method: str = "OPTIONS"
    uri: str = ""

    def _head(self) -> str:
        return f"{self.method} {self.uri} {SIP_VERSION}"


@dataclass
class Response(_Message):
    status: int = 200
    reason: str = "OK"

    def _head(self) -> str:
        return f"{SIP_VERSION} {self.status} {self.reason}"


Message = Request | Response


def _decode_head(head: bytes) -> list[str]:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SipParseError(f"header section is not UTF-8 (byte {err.start})") from None
    lines = text.split("\r\n")
    for line in lines:
        if len(line) > MAX_LINE:
            raise SipParseError(f"a header line is longer than {MAX_LINE} bytes")
        if "\r" in line or "\n" in line or "\x00" in line:
            raise SipParseError("bare CR, LF or NUL inside the header section")
    return lines


def _parse_start(line: str) -> Request | Response:
    if line.startswith("SIP/"):
        match = _STATUS_LINE.fullmatch(line)
        if match is None:
            raise SipParseError(f"bad status line {line[:80]!r}: expected 'SIP/2.0 <100-699> "
                                "<reason>'")
        return Response(Headers(), b"", int(match.group(1)), match.group(2))
    parts = line.split(" ")
    if len(parts) != 3 or parts[2] != SIP_VERSION or not _TOKEN.fullmatch(parts[0]) \
            or not _SCHEME_URI.fullmatch(parts[1]):
        raise SipParseError(f"bad request line {line[:80]!r}: expected '<METHOD> <URI> "
                            "SIP/2.0'")
    return Request(Headers(), b"", parts[0], parts[1])


def _parse_fields(lines: Sequence[str]) -> list[tuple[str, str]]:
    fields: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            if not fields:
                raise SipParseError("the first header line is a continuation line")
            name, value = fields[-1]
            value = f"{value} {line.strip()}"
            if len(value) > MAX_LINE:
                raise SipParseError(f"a folded header is longer than {MAX_LINE} bytes")
            fields[-1] = (name, value)
            continue
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not _TOKEN.fullmatch(name):
            raise SipParseError(f"bad header line {line[:80]!r}: expected '<name>: <value>'")
        fields.append((name, value.strip(" \t")))
        if len(fields) > MAX_HEADERS:
            raise SipParseError(f"more than {MAX_HEADERS} header fields")
    return fields


def _content_length(headers: Headers) -> int | None:
    value = headers.get("Content-Length")
    if value is None:
        return None
    if not value.isdigit() or len(value) > 6:
        raise SipParseError(f"Content-Length: not a number: {value[:20]!r}")
    length = int(value)
    if length > MAX_MESSAGE:
        raise SipParseError(f"Content-Length {length} is above the {MAX_MESSAGE}-byte limit")
    return length


def _parse_head(head: bytes) -> Request | Response:
    lines = _decode_head(head)
    message = _parse_start(lines[0])
    message.headers = Headers(_parse_fields(lines[1:]))
    return message


def parse_message(data: bytes) -> Message:
    """One whole message, e.g. a UDP datagram (RFC 3261 §18.3: a body longer than
    Content-Length is cut, a shorter one is an error; no Content-Length = the rest)."""
    if len(data) > MAX_MESSAGE:
        raise SipParseError(f"message of {len(data)} bytes is above the {MAX_MESSAGE}-byte "
                            "limit")
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise SipParseError("no empty line ends the header section")
    message = _parse_head(head)
    length = _content_length(message.headers)
    if length is not None:
        if len(body) < length:
            raise SipParseError(f"body is {len(body)} bytes, Content-Length says {length}")
        body = body[:length]
    message.body = body
    message._check()
    return message


@dataclass
class StreamFramer:
    """Cuts a TCP/TLS byte stream into messages by Content-Length (mandatory there).

    Keep-alive CRLFs between messages are skipped (RFC 5626 §3.5.1). The buffer never
    holds more than one message's limit: an endless header section is an error.
    """

    _buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[Message]:
        self._buffer += data
        out: list[Message] = []
        while True:
            while self._buffer[:2] == b"\r\n":
                del self._buffer[:2]
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_MESSAGE:
                    raise SipParseError(f"no end of the header section within {MAX_MESSAGE} "
                                        "bytes")
                return out
            message = _parse_head(bytes(self._buffer[:end]))
            length = _content_length(message.headers)
            if length is None:
                raise SipParseError("Content-Length is missing (mandatory over TCP/TLS)")
            total = end + 4 + length
            if total > MAX_MESSAGE:
                raise SipParseError(f"message of {total} bytes is above the {MAX_MESSAGE}-"
                                    "byte limit")
            if len(self._buffer) < total:
                return out
            message.body = bytes(self._buffer[end + 4:total])
            del self._buffer[:total]
            message._check()
            out.append(message)


def new_dialog() -> tuple[str, str, str]:
    """(Call-ID, From tag, Via branch) for a new request, from one random draw."""
    token = secrets.token_hex(24)
    return f"{token[:24]}@clgwd", token[24:36], MAGIC_COOKIE + token[36:]


def new_branch() -> str:
    return MAGIC_COOKIE + secrets.token_hex(10)
