"""Trunk health: an OPTIONS request every interval, answers classified, state debounced.

Classification of the final answer:
- 2xx: up;
- 401/407: answered again with digest credentials when the trunk has them (a second
  challenge means the credentials are wrong: failure); without credentials the peer is
  reachable and says so (up, with a note);
- 403/404/405/501: the peer is reachable but refuses OPTIONS (up, with that note);
- 3xx: reachable, redirects (up, with a note);
- 503: failure; a Retry-After delays the next check accordingly (capped);
- any other answer, a timeout, a refused connection, a DNS or TLS failure: failure, the
  reason saying which.

State machine (``TrunkState``): ``unknown`` -> ``up`` on the first success, -> ``down``
after ``down_after`` failures in a row; ``up`` -> ``down`` after ``down_after``
consecutive failures; ``down`` -> ``up`` after ``up_after`` consecutive successes.
Each probe result and each transition is handed to the owner's callback.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Final

from clgwd import __version__
from clgwd.config import Secret
from clgwd.sip.digest import authorization, parse_challenge
from clgwd.sip.message import (
    Headers,
    Request,
    Response,
    SipParseError,
    new_branch,
    new_dialog,
)
from clgwd.sip.model import TrunkSpec, is_ip
from clgwd.sip.transport import Channel, Exchange, ProbeError

_LOGGER = logging.getLogger(__name__)

MAX_RETRY_AFTER: Final = 3600.0
SERVER_MAX: Final = 128
"""Longest peer software string kept from a ``Server`` / ``User-Agent`` header."""
REFUSES_OPTIONS: Final = frozenset({403, 404, 405, 501})
_rng = random.Random()  # noqa: S311 - spreading start times, not cryptography


TICK: Final = 0.25
"""Checks start on multiples of this (loop time): the trunks due within one tick wake
the event loop once together instead of once each (500 trunks: ~4 per wake-up)."""


async def _sleep_until(loop: asyncio.AbstractEventLoop, when: float) -> None:
    """Sleep until exactly ``when`` (one timer per tick value, so they fire together)."""
    waker: asyncio.Future[None] = loop.create_future()
    handle = loop.call_at(when, _wake, waker)
    try:
        await waker
    finally:
        handle.cancel()


def _wake(waker: asyncio.Future[None]) -> None:
    if not waker.done():
        waker.set_result(None)


class TrunkState(StrEnum):
    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True)
class Thresholds:
    down_after: int = 3
    up_after: int = 2


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    at: float
    rtt_ms: float | None = None
    status: int | None = None
    reason: str = ""
    note: str = ""
    retry_after: float | None = None
    server: str = ""
    """The peer's ``Server`` (or ``User-Agent``) header, when it answered."""


@dataclass
class Health:
    """What a trunk's monitor knows, as the front doors show it."""

    state: TrunkState = TrunkState.UNKNOWN
    since: float = field(default_factory=time.time)
    rtt_ms: float | None = None
    reason: str = "not checked yet"
    note: str = ""
    last_check: float | None = None
    status: int | None = None
    successes: int = 0
    failures: int = 0
    server: str = ""
    """The peer's software as its last answer named it (kept while it does not answer):
    the inventory lists it as a ``sip-trunk-peer`` application."""

    def as_json(self) -> dict[str, Any]:
        return {"state": self.state.value, "since": self.since, "rtt_ms": self.rtt_ms,
                "reason": self.reason, "note": self.note, "last_check": self.last_check,
                "status_code": self.status, "server": self.server or None}


ResultCallback = Callable[["TrunkMonitor", ProbeResult, TrunkState], Awaitable[None]]
"""Called after every probe with the result and the state before it."""


def _retry_after(answer: Response) -> float | None:
    value = (answer.headers.get("Retry-After") or "").split(";")[0].split("(")[0].strip()
    return min(float(value), MAX_RETRY_AFTER) if value.isdigit() else None


def peer_server(answer: Response) -> str:
    """The answering peer's software: its ``Server`` header, else its ``User-Agent``."""
    value = answer.headers.get("Server") or answer.headers.get("User-Agent") or ""
    return "".join(c for c in value if c.isprintable()).strip()[:SERVER_MAX]


def classify(answer: Response, rtt_ms: float, at: float) -> ProbeResult:
    return replace(_classify(answer, rtt_ms, at), server=peer_server(answer))


def _classify(answer: Response, rtt_ms: float, at: float) -> ProbeResult:
    code = answer.status
    text = f"{code} {answer.reason}".strip()
    if 200 <= code < 300:
        return ProbeResult(True, at, rtt_ms, code, f"answered {text}")
    if code in REFUSES_OPTIONS:
        return ProbeResult(True, at, rtt_ms, code, f"answered {text}",
                           note="reachable, refuses OPTIONS")
    if 300 <= code < 400:
        return ProbeResult(True, at, rtt_ms, code, f"answered {text}",
                           note="reachable, redirects OPTIONS")
    if code in {401, 407}:
        return ProbeResult(True, at, rtt_ms, code, f"answered {text}",
                           note="reachable, asks for authentication (no credentials set)")
    if code == 503:
        delay = _retry_after(answer)
        later = f"; Retry-After {delay:g} s: next check then" if delay is not None else ""
        return ProbeResult(False, at, rtt_ms, code, f"answered {text}{later}",
                           retry_after=delay)
    return ProbeResult(False, at, rtt_ms, code, f"answered {text}")


class TrunkMonitor:
    """Checks one trunk on its interval; ``check_now`` runs a check at once."""

    def __init__(self, spec: TrunkSpec, password: Secret | None, channel: Channel,
                 thresholds: Thresholds, on_result: ResultCallback, *,
                 secondary: Channel | None = None) -> None:
        self.spec = spec
        self.password = password
        self.channel = channel
        self.secondary = secondary
        """The channel to ``spec.secondary_host``, when the trunk has one."""
        self.thresholds = thresholds
        self.health = Health()
        self._on_result = on_result
        self._lock = asyncio.Lock()
        self._cseq = _rng.randint(1, 10_000)
        self._due = 0.0
        self._bounded = spec.transport == "udp" and is_ip(spec.host) and (
            spec.secondary_host is None or is_ip(spec.secondary_host))

    async def run(self) -> None:
        """Check whenever the next check is due; the first one at a random point of the
        first interval, so 500 trunks do not send in step."""
        loop = asyncio.get_running_loop()
        self._due = loop.time() + _rng.uniform(0, self.spec.interval)
        while True:
            if self._due > loop.time():
                await _sleep_until(loop, math.ceil(self._due / TICK) * TICK)
                continue  # a check meanwhile may have moved _due
            await self.check_now(forced=False)

    async def check_now(self, *, forced: bool = True) -> Health:
        """One check now; ``forced`` (a person asked) skips a pending reconnect delay."""
        async with self._lock:
            if forced:
                self.channel.retry_now()
                if self.secondary is not None:
                    self.secondary.retry_now()
            result = await self._probe()
            before = self.health.state
            self._due = asyncio.get_running_loop().time() + self._apply(result)
            await self._on_result(self, result, before)
            return self.health

    async def aclose(self) -> None:
        await self.channel.aclose()
        if self.secondary is not None:
            await self.secondary.aclose()

    # -- one probe ----------------------------------------------------------------------

    async def _probe(self) -> ProbeResult:
        """The host's check; when it fails and the trunk has a secondary host (a
        resilient PBX pair), the secondary's: the trunk is up if either answers."""
        first = await self._probe_bounded(self.channel, self.spec.target)
        if first.ok or self.secondary is None or self.spec.secondary_host is None:
            return first
        other = self.spec.secondary_target
        second = await self._probe_bounded(self.secondary, other)
        if second.ok:
            return replace(second, note=f"answered by the secondary {other}; primary "
                           f"{self.spec.target}: {first.reason}")
        return replace(first, reason=f"{first.reason}; secondary {other}: {second.reason}")

    async def _probe_bounded(self, channel: Channel, target: str) -> ProbeResult:
        """One check, bounded: name resolution, connecting, the answer and a digest
        retry together take at most ``probe_limit``."""
        limit = self.probe_limit
        if self._bounded:  # UDP to an IP: the exchange's own limit
            return await self._probe_unbounded(channel, target)
        try:
            async with asyncio.timeout(limit):
                return await self._probe_unbounded(channel, target)
        except TimeoutError:
            return ProbeResult(False, time.time(), reason=f"no result within {limit:g} s "
                               "(name resolution or connection hanging)")

    @property
    def probe_limit(self) -> float:
        return self.spec.timeout * 3 + 5

    async def _probe_unbounded(self, channel: Channel, target: str) -> ProbeResult:
        started = time.monotonic()
        at = time.time()
        try:
            dialog = new_dialog()
            answer = await self._exchange(channel, target, None, dialog)
            rtt = (time.monotonic() - started) * 1000
            if answer.status in {401, 407} and self.spec.username and self.password:
                started = time.monotonic()
                retry = await self._exchange(channel, target, answer, dialog)
                rtt = (time.monotonic() - started) * 1000
                if retry.status in {401, 407}:
                    return ProbeResult(False, at, rtt, retry.status,
                                       f"authentication failed: {retry.status} "
                                       f"{retry.reason} again with the configured username "
                                       f"{self.spec.username!r}")
                answer = retry
            return classify(answer, round(rtt, 2), at)
        except ProbeError as err:
            return ProbeResult(False, at, reason=str(err))
        except SipParseError as err:
            return ProbeResult(False, at, reason=f"bad authentication challenge: {err}")

    async def _exchange(self, channel: Channel, target: str, challenge: Response | None,
                        dialog: tuple[str, str, str]) -> Response:
        """One OPTIONS to ``target``; a retry answering ``challenge`` keeps the Call-ID
        and From tag and takes the next CSeq (RFC 3261 §22.2)."""
        spec = self.spec
        local_ip, local_port = await channel.local_address()
        via_host = f"[{local_ip}]" if ":" in local_ip else local_ip
        self._cseq = self._cseq % (2 ** 31 - 2) + 1
        transport = spec.transport.upper()
        uri = f"sip:{target}" + (f";transport={spec.transport}"
                                      if spec.transport != "udp" else "")
        headers = Headers([
            ("Via", f"SIP/2.0/{transport} {via_host}:{local_port};branch="
                    f"{new_branch() if challenge else dialog[2]};rport"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:clgwd@{via_host}>;tag={dialog[1]}"),
            ("To", f"<{uri}>"),
            ("Call-ID", dialog[0]),
            ("CSeq", f"{self._cseq} OPTIONS"),
            ("Contact", f"<sip:clgwd@{via_host}:{local_port};transport={spec.transport}>"),
            ("Accept", "application/sdp"),
            ("User-Agent", f"clgwd/{__version__}"),
            ("Content-Length", "0"),
        ])
        if challenge is not None:
            assert self.password is not None and spec.username is not None
            proxy = challenge.status == 407
            value = challenge.headers.get(
                "Proxy-Authenticate" if proxy else "WWW-Authenticate")
            if value is None:
                raise SipParseError(f"{challenge.status} without a challenge header")
            header = authorization(parse_challenge(value), "OPTIONS", uri, spec.username,
                                   self.password.reveal())
            headers.add("Proxy-Authorization" if proxy else "Authorization", header)
        request = Request(headers, b"", "OPTIONS", uri)
        return await channel.exchange(request, spec.timeout, Exchange())

    # -- state ----------------------------------------------------------------------------

    def _apply(self, result: ProbeResult) -> float:
        """Update the health; returns the seconds until the next check."""
        h = self.health
        delay = self.spec.interval
        h.last_check = result.at
        h.status = result.status
        h.note = result.note
        h.reason = result.reason
        if result.server:
            h.server = result.server
        if result.ok:
            h.rtt_ms = result.rtt_ms
            h.successes, h.failures = h.successes + 1, 0
        else:
            h.successes, h.failures = 0, h.failures + 1
            if result.retry_after is not None:
                delay = max(result.retry_after, delay)
        new = h.state
        if h.state != TrunkState.UP and result.ok and (
                h.state == TrunkState.UNKNOWN or h.successes >= self.thresholds.up_after):
            new = TrunkState.UP
        elif h.state != TrunkState.DOWN and not result.ok \
                and h.failures >= self.thresholds.down_after:
            new = TrunkState.DOWN
        if new != h.state:
            _LOGGER.log(logging.WARNING if new == TrunkState.DOWN else logging.INFO,
                        "SIP trunk %s: %s -> %s (%s)", self.spec.name, h.state.value,
                        new.value, result.reason)
            h.state = new
            h.since = result.at
        if not result.ok and h.state == TrunkState.DOWN:
            h.rtt_ms = None
        return delay
