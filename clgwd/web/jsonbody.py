"""Parsing a request's JSON body without letting a hostile body cost more than a 422.

``json.loads`` recurses once per nesting level, so ``[`` x 1,100 raised ``RecursionError``
(a 500 and a traceback in the log per request: a cheap log flood, even before login).
``parse`` first measures the nesting depth without recursion (strings removed by one
regular expression, then one pass over the brackets) and refuses anything deeper than
``MAX_DEPTH``, which no body of this API comes near. Every failure is one ``BadBody``
with a message for the technician; ``BadBodyLog`` logs at most one line per client.
"""

from __future__ import annotations

import json
import logging
import re
from collections import OrderedDict
from typing import Any, Final

_LOGGER = logging.getLogger(__name__)

MAX_DEPTH: Final = 32
"""Deepest nesting accepted; the API's deepest body (network ports) is 3."""
MAX_CLIENTS_REMEMBERED: Final = 4096

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


class BadBody(ValueError):
    """The body is not JSON this API can read (the message says why)."""


def nesting_depth(raw: bytes) -> int:
    """The deepest ``[``/``{`` nesting outside strings (no recursion)."""
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING.sub(b'""', raw)):
        if match.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def parse(raw: bytes) -> Any:
    """The body's JSON value (``{}`` for an empty body); ``BadBody`` otherwise."""
    if not raw:
        return {}
    if nesting_depth(raw) > MAX_DEPTH:
        raise BadBody(f"request body is nested more than {MAX_DEPTH} levels deep")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadBody("request body is not valid JSON") from None


class BadBodyLog:
    """Logs an unreadable body once per client address (the first one), so a client
    that keeps sending them cannot fill the log."""

    def __init__(self, limit: int = MAX_CLIENTS_REMEMBERED) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._limit = limit

    def note(self, client: str, path: str, err: BadBody) -> None:
        if client in self._seen:
            self._seen.move_to_end(client)
            return
        self._seen[client] = None
        if len(self._seen) > self._limit:
            self._seen.popitem(last=False)
        _LOGGER.warning("Unreadable request body from %s on %s: %s (further ones from this "
                        "client are not logged)", client, path, err)


BAD_BODIES: Final = BadBodyLog()
"""The daemon's one log of unreadable bodies (``clgwd.web.api._body``)."""
