"""Schemathesis hooks for tests/web/test_schemathesis.py: every 4xx explains itself."""

from __future__ import annotations

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
