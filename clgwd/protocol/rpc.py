"""The clgwd cloud protocol, version 1: constants, JSON-RPC 2.0 envelopes, parse/encode.

This module is the one piece of the gateway that the reference cloud may import, so it
imports nothing else of clgwd. docs/protocol.md describes the same thing in prose and
``schemas/clgwd-v1.schema.json`` as JSON Schema; a test validates recorded traffic of
both sides against that schema, so the three cannot drift apart silently.

Text messages carry JSON-RPC 2.0 (requests, notifications, responses, both ways);
binary messages are tunnel frames and never pass through here.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

PROTOCOL_VERSION: Final = 1
SUBPROTOCOL: Final = "clgwd.v1"
GATEWAY_PATH: Final = "/v1/gateway"
ENROLL_PATH: Final = "/v1/enroll"
MAX_MESSAGE_BYTES: Final = 1 << 20
"""Largest websocket message either side accepts (text or binary)."""
CERT_URI_PREFIX: Final = "urn:clgwd:gateway:"
"""Client certificates carry ``urn:clgwd:gateway:<gateway id>`` as a SAN URI."""
IDEMPOTENCY_PARAM: Final = "idempotency_key"
"""Reserved member of ``params`` in mutating commands; stripped before dispatch."""

# Gateway -> cloud requests.
HELLO: Final = "hello"
EVENT_PUSH: Final = "event.push"
CERT_RENEW: Final = "cert.renew"
RELEASE_LATEST: Final = "release.latest"
RELEASES_PATH: Final = "/v1/releases/"
"""Release bundles are downloaded from ``<cloud>/v1/releases/<version>`` (mutual TLS)."""
# Cloud -> gateway notification.
GOAWAY: Final = "goaway"
# Cloud -> gateway commands (the gateway's command router owns their handlers).
COMMAND_METHODS: Final = (
    "status.report", "config.get", "config.set", "sync.now", "sync.preview",
    "tunnel.start", "tunnel.stop", "tunnel.list", "inventory.report", "logs.collect",
    "system.reboot", "system.factory_reset", "update.schedule", "update.apply",
    "network.confirm", "network.preflight",
)

# JSON-RPC 2.0 error codes; -32000..-32099 are ours.
PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603
APPLICATION_ERROR: Final = -32000
"""A handler failed with an expected error; ``data.code`` is its stable code."""
NOT_SUPPORTED_YET: Final = -32001
"""The method is part of the protocol but this gateway build does not implement it."""
BUSY: Final = -32002
"""Too many commands in flight; retry later with the same idempotency key."""
IDEMPOTENCY_CONFLICT: Final = -32003
"""The idempotency key was first used with a different method."""
LOCAL_ONLY: Final = -32004
"""The method exists but only the gateway's LAN front doors (page, CLI) may call it."""

RequestId = int | str


class ProtocolViolation(Exception):
    """A text message is not valid JSON-RPC 2.0; answer with ``error`` (id may be None)."""

    def __init__(self, code: int, message: str, request_id: RequestId | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


@dataclass(frozen=True)
class RpcError:
    """A JSON-RPC error object."""

    code: int
    message: str
    data: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            out["data"] = self.data
        return out


@dataclass(frozen=True)
class Request:
    id: RequestId
    method: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Notification:
    method: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Response:
    id: RequestId
    result: Any


@dataclass(frozen=True)
class ErrorResponse:
    id: RequestId | None
    error: RpcError


Message = Request | Notification | Response | ErrorResponse


def encode(message: Message) -> str:
    """Serialize one message as compact JSON text, non-ASCII left as UTF-8 (websocket
    text frames are UTF-8 anyway): a record then takes as many bytes on the wire as in
    the outbox, which the push budget counts on."""
    body: dict[str, Any] = {"jsonrpc": "2.0"}
    if isinstance(message, Request):
        body.update(id=message.id, method=message.method, params=message.params)
    elif isinstance(message, Notification):
        body.update(method=message.method, params=message.params)
    elif isinstance(message, Response):
        body.update(id=message.id, result=message.result)
    else:
        body.update(id=message.id, error=message.error.as_json())
    return json.dumps(body, separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def parse(text: str) -> Message:
    """Parse one text message; raises ``ProtocolViolation`` with the JSON-RPC code."""
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolViolation(PARSE_ERROR, "message is not valid JSON") from None
    if not isinstance(body, dict):
        raise ProtocolViolation(INVALID_REQUEST, "message must be a JSON object "
                                "(batches are not used by this protocol)")
    request_id = _request_id(body)
    if body.get("jsonrpc") != "2.0":
        raise ProtocolViolation(INVALID_REQUEST, 'jsonrpc must be "2.0"', request_id)
    if "method" in body:
        return _parse_call(body, request_id)
    return _parse_reply(body, request_id)


def _request_id(body: dict[str, Any]) -> RequestId | None:
    value = body.get("id")
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    return value


def _parse_call(body: dict[str, Any], request_id: RequestId | None) -> Message:
    method = body["method"]
    if not isinstance(method, str) or not method:
        raise ProtocolViolation(INVALID_REQUEST, "method must be a non-empty string",
                                request_id)
    params = body.get("params", {})
    if not isinstance(params, dict):
        raise ProtocolViolation(INVALID_PARAMS, "params must be an object", request_id)
    if "id" not in body:
        return Notification(method, params)
    if request_id is None:
        raise ProtocolViolation(INVALID_REQUEST, "id must be a string or an integer")
    return Request(request_id, method, params)


def _parse_reply(body: dict[str, Any], request_id: RequestId | None) -> Message:
    if "result" in body and "error" not in body:
        if request_id is None:
            raise ProtocolViolation(INVALID_REQUEST, "response id must be a string or integer")
        return Response(request_id, body["result"])
    error = body.get("error")
    if "result" not in body and isinstance(error, dict):
        code, message = error.get("code"), error.get("message")
        data = error.get("data")
        if (isinstance(code, int) and not isinstance(code, bool)
                and isinstance(message, str) and (data is None or isinstance(data, dict))):
            return ErrorResponse(request_id, RpcError(code, message, data))
    raise ProtocolViolation(INVALID_REQUEST,
                            "message has neither a method nor exactly one of result/error",
                            request_id)


def error_response(request_id: RequestId | None, code: int, message: str,
                   error_code: str | None = None) -> ErrorResponse:
    """An error reply; ``error_code`` is the stable string code put in ``data.code``."""
    data = {"code": error_code} if error_code is not None else None
    return ErrorResponse(request_id, RpcError(code, message, data))


def gateway_id_from_uri(uri: str) -> str | None:
    """The gateway id in a certificate SAN URI, or None when it is not one of ours."""
    if not uri.startswith(CERT_URI_PREFIX):
        return None
    gateway_id = uri.removeprefix(CERT_URI_PREFIX)
    return gateway_id if is_valid_gateway_id(gateway_id) else None


def is_valid_gateway_id(value: str) -> bool:
    """Gateway ids are ``gw-`` plus 32 lowercase hex digits."""
    return (len(value) == 35 and value.startswith("gw-")
            and all(c in "0123456789abcdef" for c in value[3:]))


class RpcFailed(Exception):
    """The peer answered a request with a JSON-RPC error (or a handler wants to)."""

    def __init__(self, error: RpcError) -> None:
        super().__init__(f"{error.message} (code {error.code})")
        self.error = error


def rpc_failed(code: int, message: str, error_code: str | None = None) -> RpcFailed:
    """``RpcFailed`` for ``error_response(...)``'s error (``data.code`` = ``error_code``)."""
    return RpcFailed(error_response(None, code, message, error_code).error)


class PendingRequests:
    """Correlates our outgoing request ids with the peer's replies (both sides use it)."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._pending: dict[RequestId, asyncio.Future[Any]] = {}

    async def call(self, send: Callable[[Request], Awaitable[None]], method: str,
                   params: dict[str, Any], limit: float) -> Any:
        """Send a request through ``send`` and wait (at most ``limit`` s) for its reply:
        the result, or ``RpcFailed``; ``TimeoutError`` and what ``send`` raises pass."""
        request_id, future = self.open()
        try:
            await send(Request(request_id, method, params))
            async with asyncio.timeout(limit):
                return await future
        finally:
            self.close(request_id)

    def open(self) -> tuple[int, asyncio.Future[Any]]:
        """A fresh id and the future its reply will complete; ``close(id)`` afterwards."""
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        return request_id, future

    def close(self, request_id: int) -> None:
        self._pending.pop(request_id, None)

    def resolve(self, reply: Response | ErrorResponse) -> bool:
        """Complete the matching request; False for a reply to an unknown id."""
        future = self._pending.get(reply.id) if reply.id is not None else None
        if future is None or future.done():
            return False
        if isinstance(reply, Response):
            future.set_result(reply.result)
        else:
            _fail_quietly(future, RpcFailed(reply.error))
        return True

    def fail_all(self, make_error: Callable[[], Exception]) -> None:
        """The connection is gone: every waiting request fails."""
        for future in self._pending.values():
            if not future.done():
                _fail_quietly(future, make_error())


def _fail_quietly(future: asyncio.Future[Any], error: Exception) -> None:
    """Fail a future without asyncio logging "exception never retrieved" when its
    waiter was cancelled at the same moment (the waiter still gets the error)."""
    future.set_exception(error)
    future.exception()
