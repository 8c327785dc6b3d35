"""Hostile JSON bodies: deep nesting is a 422, never a 500, and the log stays quiet."""

from __future__ import annotations

import contextlib
import json
import logging

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from clgwd.web import jsonbody
from clgwd.web.api import ROUTES
from tests.web.conftest import Gateway, setup_admin

DEPTHS = (900, 1_100, 5_000, 30_000)


def _nested(depth: int, kind: str) -> bytes:
    return (b"[" * depth) if kind == "open" else (b'{"a":' * depth + b"1" + b"}" * depth)


async def test_deep_nesting_is_a_422_on_every_json_route(
        gateway: Gateway, client: aiohttp.ClientSession,
        caplog: pytest.LogCaptureFixture) -> None:
    """Depths 900-30,000 (open brackets and complete objects) to every route with a JSON
    body, before and after login: 422 invalid_input each time, no traceback, and at most
    one log line for this client."""
    caplog.set_level(logging.INFO)
    jsonbody.BAD_BODIES.__init__()  # type: ignore[misc]  # a fresh per-client memory
    routes = [r for r in ROUTES if r.body is not None and "{" not in r.path]
    assert len(routes) > 10
    for path in ("/api/v1/session/login", "/api/v1/session/setup"):  # no session
        for depth in DEPTHS:
            async with client.post(gateway.base + path, data=_nested(depth, "open"),
                                   headers={"Content-Type": "application/json"}) as resp:
                assert resp.status == 422, (path, depth, await resp.text())
                assert (await resp.json())["code"] == "invalid_input"
    csrf = await setup_admin(client, gateway)
    for route in routes:
        for depth in DEPTHS:
            for kind in ("open", "closed"):
                async with client.request(
                        route.method, gateway.base + route.path, data=_nested(depth, kind),
                        headers={"Content-Type": "application/json",
                                 "X-CSRF-Token": csrf}) as resp:
                    body = await resp.json()
                    assert resp.status == 422, (route.path, depth, kind, body)
                    assert "nested more than" in body["message"] \
                        or body["message"] == "request body too large"  # over 64 KiB
    assert "Traceback" not in caplog.text and "RecursionError" not in caplog.text
    lines = [r for r in caplog.records if r.name == "clgwd.web.jsonbody"]
    assert len(lines) == 1 and "127.0.0.1" in lines[0].getMessage()


def test_depth_counts_brackets_outside_strings_only() -> None:
    """Brackets inside strings (escaped quotes too) do not count as nesting."""
    assert jsonbody.nesting_depth(b'{"a": "[[[[\\"[[[["}') == 1
    assert jsonbody.nesting_depth(b"[[1], {\"b\": [2]}]") == 3
    assert jsonbody.parse(b"") == {}
    with pytest.raises(jsonbody.BadBody, match="not valid JSON"):
        jsonbody.parse(b"\xff{")


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                    lambda kids: st.lists(kids, max_size=3)
                    | st.dictionaries(st.text(max_size=5), kids, max_size=3), max_leaves=20))
def test_parse_accepts_what_json_produces(value: object) -> None:
    """Any JSON value within the depth limit parses to itself."""
    raw = json.dumps(value).encode()
    if jsonbody.nesting_depth(raw) <= jsonbody.MAX_DEPTH:
        assert jsonbody.parse(raw) == value


@given(st.binary(max_size=300))
def test_parse_never_raises_anything_but_bad_body(raw: bytes) -> None:
    """Arbitrary bytes give a value or BadBody, never another exception."""
    with contextlib.suppress(jsonbody.BadBody):
        jsonbody.parse(raw)
