"""Schemathesis hooks for tests/web/test_schemathesis.py: every 4xx explains itself."""

from __future__ import annotations

import ipaddress
from typing import Any

import schemathesis


@schemathesis.check
def clear_error_message(ctx: Any, response: Any, case: Any) -> None:
    """A 4xx must be JSON ``{"code", "message"}`` with a non-empty message."""
    if not 400 <= response.status_code < 500:
        return
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"{response.status_code} is not JSON: {response.text[:300]!r}"
                             ) from None
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, str) or not message.strip() or not body.get("code"):
        raise AssertionError(f"{response.status_code} without a clear message: {body!r}")


@schemathesis.check
def no_server_error(ctx: Any, response: Any, case: Any) -> None:
    """No 5xx, except the documented 501 of a part this build does not have yet."""
    if response.status_code < 500:
        return
    body = response.json() if response.status_code == 501 else None
    if isinstance(body, dict) and body.get("code") == "not_supported_yet" and body.get(
            "message"):
        return
    raise AssertionError(f"server error {response.status_code}: {response.text[:300]}")


# The monitoring routes apply at once: an agent address is bound, a broker is dialled,
# a LAN platform is polled. Generated addresses are kept on loopback (the network rule).
_SAFE_ENDPOINT = "127.0.0.1:9"
_SAFE_URL = "mqtt://127.0.0.1:9"


def _loopback_endpoint(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    host = value[1:].partition("]")[0] if value.startswith("[") else value.rpartition(":")[0]
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        return value  # not an IP: refused before anything is sent
    return value if loopback else _SAFE_ENDPOINT


def _loopback(data: Any) -> Any:
    if isinstance(data, list):
        return [_loopback(v) for v in data]
    if not isinstance(data, dict):
        return data
    out = {}
    for key, value in data.items():
        if key == "listen" and isinstance(value, list):
            out[key] = [_loopback_endpoint(v) for v in value]
        elif key == "address":
            out[key] = _loopback_endpoint(value)
        elif key == "url" and isinstance(value, str) and value:
            out[key] = _SAFE_URL
        else:
            out[key] = _loopback(value)
    return out


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    """Generated monitoring settings name only loopback addresses."""
    if case.operation.path.startswith("/api/v1/monitoring") and case.body is not None:
        case.body = _loopback(case.body)
    return case
