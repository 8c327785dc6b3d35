"""The SIP message layer: strict, bounded parsing and building (RFC 3261)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clgwd.sip.message import (
    MAX_HEADERS,
    MAX_LINE,
    MAX_MESSAGE,
    Headers,
    Request,
    Response,
    SipParseError,
    StreamFramer,
    parse_message,
)

OK = (b"SIP/2.0 200 OK\r\n"
      b"Via: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKabc;rport=5090,"
      b" SIP/2.0/TCP 192.0.2.1;branch=z9hG4bKdef\r\n"
      b"From: <sip:clgwd@127.0.0.1>;tag=aa11\r\n"
      b"To: \"Trunk, Main\" <sip:127.0.0.1:5070>;tag=bb22\r\n"
      b"Call-ID: 123@127.0.0.1\r\n"
      b"CSeq: 7 OPTIONS\r\n"
      b"Allow: INVITE, ACK,\r\n OPTIONS\r\n"
      b"Content-Length: 4\r\n\r\nv=0\n")


def test_parses_response_fields() -> None:
    """Status, folded and multi-valued headers, tags, CSeq and the top Via are read."""
    msg = parse_message(OK)
    assert isinstance(msg, Response)
    assert (msg.status, msg.reason) == (200, "OK")
    assert msg.cseq == (7, "OPTIONS")
    assert msg.call_id == "123@127.0.0.1"
    assert (msg.from_tag, msg.to_tag) == ("aa11", "bb22")
    assert msg.headers.get_all("Via")[1] == "SIP/2.0/TCP 192.0.2.1;branch=z9hG4bKdef"
    assert msg.top_via.branch == "z9hG4bKabc" and msg.top_via.rfc3261_branch
    assert msg.headers.get_all("allow") == ["INVITE", "ACK", "OPTIONS"]
    assert msg.body == b"v=0\n"


def test_compact_forms_are_expanded() -> None:
    """``v``, ``f``, ``t``, ``i``, ``l`` mean Via, From, To, Call-ID, Content-Length."""
    data = (b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
            b"f: <sip:a@h>;tag=1\r\nt: sip:b@h;tag=2\r\ni: x\r\nCSeq: 1 OPTIONS\r\n"
            b"l: 0\r\n\r\n")
    msg = parse_message(data)
    assert isinstance(msg, Request) and msg.method == "OPTIONS"
    assert msg.call_id == "x" and msg.to_tag == "2"
    assert [n for n, _ in msg.headers][:4] == ["Via", "From", "To", "Call-ID"]


@pytest.mark.parametrize(("data", "words"), [
    (OK.replace(b"200 OK", b"999 Huh"), "status line"),
    (OK.replace(b"CSeq: 7", b"CSeq: x"), "CSeq"),
    (OK.replace(b"CSeq: 7", b"CSeq: 99999999999"), "CSeq"),
    (OK.replace(b"Call-ID: 123@127.0.0.1\r\n", b""), "Call-ID is missing"),
    (OK.replace(b"From:", b"From"), "bad header line"),
    (OK.replace(b"Content-Length: 4", b"Content-Length: 40"), "Content-Length says 40"),
    (OK.replace(b"Via: SIP/2.0/UDP", b"Via: HTTP/1.1"), "Via"),
    (OK.replace(b"To:", b"Call-ID: again\r\nTo:"), "more than once"),
    (OK[:40], "no empty line"),
    (OK.replace(b"OK", b"\xff\xfe"), "not UTF-8"),
    (b"SIP/2.0 200 OK\r\n" + b"X-A: 1\r\n" * (MAX_HEADERS + 1) + b"\r\n", "more than"),
    (b"SIP/2.0 200 OK\r\nX: " + b"a" * MAX_LINE + b"\r\n\r\n", "longer than"),
    (OK + b"a" * MAX_MESSAGE, "limit"),
])
def test_rejects_bad_messages_with_reason(data: bytes, words: str) -> None:
    """Malformed or oversized input is a SipParseError that says what is wrong."""
    with pytest.raises(SipParseError, match=words):
        parse_message(data)


def test_stream_framing_by_content_length() -> None:
    """On a stream, messages are cut by Content-Length, even when split anywhere."""
    framer = StreamFramer()
    stream = b"\r\n\r\n" + OK + OK
    out = []
    for i in range(0, len(stream), 7):
        out.extend(framer.feed(stream[i:i + 7]))
    assert len(out) == 2 and all(m.body == b"v=0\n" for m in out)


def test_stream_needs_content_length() -> None:
    """A stream message without Content-Length cannot be framed: error."""
    data = OK.replace(b"Content-Length: 4\r\n", b"")
    with pytest.raises(SipParseError, match="mandatory over TCP"):
        StreamFramer().feed(data)


def test_stream_header_section_is_bounded() -> None:
    """An endless header section fails once it passes the size limit."""
    framer = StreamFramer()
    framer.feed(b"SIP/2.0 200 OK\r\n")
    with pytest.raises(SipParseError, match="no end of the header section"):
        for _ in range(MAX_MESSAGE // 1000 + 2):
            framer.feed(b"X: " + b"a" * 995 + b"\r\n")


_token = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+~",
                 min_size=1, max_size=20)
_value = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e,
                               exclude_characters=","), min_size=1, max_size=40)


@given(method=_token, call_id=_value, cseq=st.integers(0, 2 ** 31 - 1),
       body=st.binary(max_size=200), extra=st.lists(st.tuples(_token, _value), max_size=10))
def test_round_trip(method: str, call_id: str, cseq: int, body: bytes,
                    extra: list[tuple[str, str]]) -> None:
    """What we build, we parse back identically."""
    headers = Headers([("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1"),
                       ("From", "<sip:a@h>;tag=x"), ("To", "<sip:b@h>"),
                       ("Call-ID", call_id), ("CSeq", f"{cseq} {method}"), *(
                           (f"X-{n}", v) for n, v in extra)])
    req = Request(headers, body, method, "sip:127.0.0.1:5060")
    msg = parse_message(req.to_bytes())
    assert isinstance(msg, Request)
    assert (msg.method, msg.uri, msg.body, msg.call_id) == (method, req.uri, body, call_id)
    assert msg.cseq == (cseq, method)
    assert list(msg.headers) == list(req.headers)


@settings(max_examples=500)
@given(data=st.binary(max_size=600))
def test_fuzz_random_bytes(data: bytes) -> None:
    """Random bytes: a message or a SipParseError, never another exception."""
    with contextlib.suppress(SipParseError):
        parse_message(data)


@settings(max_examples=1000)
@given(cuts=st.lists(st.tuples(st.integers(0, len(OK)), st.integers(0, 12),
                               st.binary(max_size=8)), min_size=1, max_size=6),
       chunk=st.integers(1, 64))
def test_fuzz_mutated_messages(cuts: list[tuple[int, int, bytes]], chunk: int) -> None:
    """Mutations of a valid answer, as a datagram and as a stream: only SipParseError."""
    data = bytearray(OK)
    for pos, drop, insert in cuts:
        data[pos:pos + drop] = insert
    with contextlib.suppress(SipParseError):
        parse_message(bytes(data))
    framer = StreamFramer()
    try:
        for i in range(0, len(data), chunk):
            framer.feed(bytes(data[i:i + chunk]))
    except SipParseError:
        pass


@settings(max_examples=500)
@given(text=st.text(max_size=300))
def test_fuzz_digest_challenge(text: str) -> None:
    """Any challenge text: a Challenge or a SipParseError, never another exception."""
    from clgwd.sip.digest import parse_challenge

    with contextlib.suppress(SipParseError):
        parse_challenge("Digest " + text)
