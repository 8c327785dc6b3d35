"""The Launch proxy's HTTP mode: Host rewritten on every request of a kept-alive
connection, bodies framed by Content-Length or chunked coding, Upgrade passed raw."""

from __future__ import annotations

import pytest

from clgwd.refcloud.httprewrite import MAX_REQUEST_HEAD, BadRequest, RequestRewriter

HOST = "mivb.example:8080"


def run(data: bytes, *, piece: int | None = None) -> tuple[bytes, RequestRewriter]:
    """Feed ``data`` whole or in ``piece``-byte slices; the joined output."""
    rewriter = RequestRewriter(HOST)
    step = piece or len(data)
    out = b"".join(b"".join(rewriter.feed(data[i:i + step])) for i in range(0, len(data), step))
    return out, rewriter


@pytest.mark.parametrize("piece", [None, 1, 7])
def test_every_request_of_a_kept_alive_connection_is_rewritten(piece: int | None) -> None:
    client = (b"POST /a HTTP/1.1\r\nHost: proxy\r\nContent-Length: 13\r\n\r\n"
              b"Host: in body"
              b"PUT /b HTTP/1.1\r\nHost: proxy\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5;ext=1\r\nHost:\r\n0\r\nX-Trailer: 1\r\n\r\n"
              b"GET /c HTTP/1.1\r\nhost: proxy\r\nProxy-Connection: keep-alive\r\n\r\n")
    out, rewriter = run(client, piece=piece)
    assert out == (b"POST /a HTTP/1.1\r\nHost: mivb.example:8080\r\nContent-Length: 13\r\n\r\n"
                   b"Host: in body"
                   b"PUT /b HTTP/1.1\r\nHost: mivb.example:8080\r\nTransfer-Encoding: chunked"
                   b"\r\n\r\n5;ext=1\r\nHost:\r\n0\r\nX-Trailer: 1\r\n\r\n"
                   b"GET /c HTTP/1.1\r\nHost: mivb.example:8080\r\n\r\n")
    assert rewriter.requests == 3


def test_upgrade_switches_to_raw_bytes() -> None:
    client = (b"GET /ws HTTP/1.1\r\nHost: proxy\r\nConnection: Upgrade\r\n"
              b"Upgrade: websocket\r\n\r\n\x81\x05GET / HTTP/1.1\r\n\r\n")
    out, rewriter = run(client)
    assert out == (b"GET /ws HTTP/1.1\r\nHost: mivb.example:8080\r\nConnection: Upgrade\r\n"
                   b"Upgrade: websocket\r\n\r\n\x81\x05GET / HTTP/1.1\r\n\r\n")
    assert rewriter.requests == 1


def test_incomplete_head_is_held_back() -> None:
    rewriter = RequestRewriter(HOST)
    assert rewriter.feed(b"GET / HTTP/1.1\r\nHost: pro") == []
    assert rewriter.feed(b"xy\r\n\r\n") == [b"GET / HTTP/1.1\r\nHost: mivb.example:8080\r\n\r\n"]


@pytest.mark.parametrize(("client", "status"), [
    (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", b"400 Bad Request"),
    (b"POST / HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n", b"400 Bad Request"),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", b"501 Not Implemented"),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\n", b"400 Bad Request"),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1_0\r\n", b"400 Bad Request"),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 5000,
     b"400 Bad Request"),
    (b"GET / HTTP/1.1\r\nX: " + b"a" * (MAX_REQUEST_HEAD + 1),
     b"431 Request Header Fields Too Large"),
])
def test_unframeable_input_is_refused_with_a_status(client: bytes, status: bytes) -> None:
    with pytest.raises(BadRequest) as err:
        run(client)
    assert err.value.status == status
