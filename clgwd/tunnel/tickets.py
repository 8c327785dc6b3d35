"""Verification of per-stream tickets signed by the cloud's tunnel authority.

A ticket is single use and short lived (<= 60 s). It binds one stream to this gateway,
one tunnel, one target host:port and the admin who asked. The authority key is an
Ed25519 key distinct from the TLS CA, so a compromised or misrouted edge that can speak
the link protocol still cannot open LAN connections without the authority.

Replay: a ticket id is remembered until its expiry (plus clock skew) has passed, so the
cache is bounded by the number of tickets issued in one minute. The owner seeds the
cache at start-up from the audit log, so a restart does not reopen the window.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterable
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from clgwd.protocol.wire import (
    MAX_TICKET_LIFETIME,
    TicketClaims,
    TicketFormatError,
    unpack_ticket,
)

CLOCK_SKEW: Final = 5.0
"""Seconds of clock difference tolerated between the authority and the gateway."""
MAX_REPLAY_ENTRIES: Final = 100_000


class TicketRejected(Exception):
    """The ticket is refused; ``reason`` is a stable token for audit and OPEN_ERR."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class TicketVerifier:
    """Checks signature, audience, lifetime, tunnel/target binding and replay."""

    def __init__(self, public_key_b64: str, gateway_id: str,
                 clock: Callable[[], float] = time.time) -> None:
        self._key: Ed25519PublicKey | None = None
        self._gateway_id = ""
        self._clock = clock
        self._seen: dict[str, float] = {}
        self.reconfigure(public_key_b64, gateway_id)

    def reconfigure(self, public_key_b64: str, gateway_id: str) -> None:
        """New key or identity after a reload; the replay cache is kept."""
        self._key = (Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64))
                     if public_key_b64 else None)
        self._gateway_id = gateway_id

    def remember(self, used: Iterable[tuple[str, float]]) -> None:
        """Seed the replay cache with (ticket id, expiry) pairs seen before a restart."""
        for jti, exp in used:
            self._seen[jti] = exp

    def verify(self, ticket: str, *, tunnel: str, host: str, port: int) -> TicketClaims:
        """Return the claims of a valid, fresh ticket for exactly this request."""
        if self._key is None or not self._gateway_id:
            raise TicketRejected("no-authority", "no tunnel authority key or gateway id set")
        try:
            raw, signature = unpack_ticket(ticket)
            self._key.verify(signature, raw)
        except (TicketFormatError, InvalidSignature, ValueError):
            raise TicketRejected("bad-signature", "ticket signature does not verify") from None
        try:
            claims = TicketClaims.from_canonical(raw)
        except TicketFormatError as err:
            raise TicketRejected("bad-ticket", str(err)) from None
        self._check_claims(claims, tunnel=tunnel, host=host, port=port)
        self._consume(claims)
        return claims

    def _check_claims(self, claims: TicketClaims, *, tunnel: str, host: str, port: int) -> None:
        now = self._clock()
        if claims.gateway != self._gateway_id:
            raise TicketRejected("wrong-gateway", f"ticket is for gateway {claims.gateway!r}")
        if claims.exp - claims.iat > MAX_TICKET_LIFETIME:
            raise TicketRejected("lifetime-too-long",
                                 f"ticket lifetime {claims.exp - claims.iat:.0f} s > 60 s")
        if claims.iat > now + CLOCK_SKEW:
            raise TicketRejected("not-yet-valid", "ticket issued in the future")
        if now > claims.exp + CLOCK_SKEW:
            raise TicketRejected("expired", f"ticket expired {now - claims.exp:.0f} s ago")
        if claims.tunnel != tunnel:
            raise TicketRejected("wrong-tunnel", f"ticket is for tunnel {claims.tunnel!r}")
        if claims.host != host or claims.port != port:
            raise TicketRejected("wrong-target",
                                 f"ticket is for {claims.host}:{claims.port}, "
                                 f"not {host}:{port}")
        if not claims.admin or not claims.jti:
            raise TicketRejected("bad-ticket", "ticket names no admin or id")

    def _consume(self, claims: TicketClaims) -> None:
        self._prune()
        if claims.jti in self._seen:
            raise TicketRejected("replayed", f"ticket {claims.jti} was already used")
        if len(self._seen) >= MAX_REPLAY_ENTRIES:
            raise TicketRejected("replay-cache-full", "too many tickets in the last minute")
        self._seen[claims.jti] = claims.exp

    def _prune(self) -> None:
        horizon = self._clock() - CLOCK_SKEW
        if len(self._seen) < 64:
            return
        for jti in [j for j, exp in self._seen.items() if exp < horizon]:
            del self._seen[jti]
