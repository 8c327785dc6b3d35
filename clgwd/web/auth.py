"""Who may use the onboarding page: setup code, admin password, sessions, lockout.

First visit: the technician proves physical access with the setup code (shown on the
console and label, derived from a device secret) and chooses the admin password. Later
visits log in with that password. Failed attempts back off exponentially per client
address, so guessing the code or the password online is impractical.

The setup code is ``HMAC-SHA256(device key, "clgwd setup code v1")`` rendered as 10
base32 characters. The device key is a random secret in the ``SecretStore``; at merge
it may be re-based on the device identity key made by the cloud-link part (change
``setup_code_from_key``'s input only; the format stays).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from clgwd.config import Secret
from clgwd.errors import ClgwdError
from clgwd.store import SecretStore

DEVICE_KEY_SECRET: Final = "web.device_key"  # noqa: S105 - a name, not a value
ADMIN_HASH_SECRET: Final = "web.admin_password_hash"  # noqa: S105 - a name
MIN_PASSWORD_LENGTH: Final = 10
FREE_FAILURES: Final = 5
MAX_LOCKOUT: Final = 900.0
ABSOLUTE_SESSION_LIFETIME: Final = 12 * 3600.0
MAX_SESSIONS: Final = 100
_HASHER: Final = PasswordHasher()  # argon2id, library defaults (64 MiB, t=3)


class Unauthorized(ClgwdError):
    code = "unauthorized"
    http_status = 401

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = None if retry_after is None else max(1, int(retry_after + 0.999))
        """Set when this failure started a lockout: the seconds until the next try."""


class Forbidden(ClgwdError):
    code = "forbidden"
    http_status = 403


class Conflict(ClgwdError):
    code = "conflict"
    http_status = 409


class InvalidInput(ClgwdError):
    code = "invalid_input"
    http_status = 422


class LockedOut(ClgwdError):
    code = "locked_out"
    http_status = 429

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, int(retry_after + 0.999))
        super().__init__(f"too many failed attempts; try again in {self.retry_after} s")


def setup_code_from_key(key: str) -> str:
    """The human-typable setup code: 10 base32 chars as ``XXXXX-XXXXX``."""
    digest = hmac.new(key.encode(), b"clgwd setup code v1", hashlib.sha256).digest()
    text = base64.b32encode(digest).decode()[:10]
    return f"{text[:5]}-{text[5:]}"


def normalize_code(code: str) -> str:
    """Accept the code with or without the dash, in any case, with stray spaces."""
    raw = "".join(ch for ch in code.upper() if ch.isalnum())
    return f"{raw[:5]}-{raw[5:]}"


async def device_setup_code(store: SecretStore) -> str:
    """The setup code, creating the device key on first use."""
    key = await store.get(DEVICE_KEY_SECRET)
    if key is None:
        key = Secret(secrets.token_hex(32))
        await store.put(DEVICE_KEY_SECRET, key)
    return setup_code_from_key(key.reveal())


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 256:
        raise InvalidInput("the password must have at most 256 characters")


async def hash_password(password: str) -> str:
    """argon2id in a thread: it takes ~50 ms of CPU and 64 MiB by design."""
    return await asyncio.to_thread(_HASHER.hash, password)


async def verify_password(stored_hash: str, password: str) -> bool:
    def _verify() -> bool:
        try:
            return _HASHER.verify(stored_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(_verify)


@dataclass
class _Failures:
    count: int = 0
    locked_until: float = 0.0


class Throttle:
    """Exponential back-off after ``FREE_FAILURES`` failures, per client address."""

    def __init__(self) -> None:
        self._clock = time.monotonic
        self._by_client: dict[str, _Failures] = {}

    def check(self, client: str) -> None:
        state = self._by_client.get(client)
        if state is not None and state.locked_until > self._clock():
            raise LockedOut(state.locked_until - self._clock())

    def locked_for(self, client: str) -> float:
        """Seconds until ``client`` may try again (0 when it is not locked out)."""
        state = self._by_client.get(client)
        return 0.0 if state is None else max(0.0, state.locked_until - self._clock())

    def failed(self, client: str) -> None:
        state = self._by_client.setdefault(client, _Failures())
        state.count += 1
        if state.count >= FREE_FAILURES:
            delay = min(MAX_LOCKOUT, 2.0 ** (state.count - FREE_FAILURES + 1))
            state.locked_until = self._clock() + delay
        if len(self._by_client) > 10_000:  # bound memory under a spray of addresses
            self._by_client.pop(next(iter(self._by_client)))

    def succeeded(self, client: str) -> None:
        self._by_client.pop(client, None)


@dataclass
class Session:
    user: str
    csrf: str
    created: float
    last_seen: float


class Sessions:
    """Server-side sessions keyed by a random cookie value; memory only (a restart
    logs everybody out, which is acceptable for an onboarding tool)."""

    def __init__(self, idle_seconds: float) -> None:
        self.idle_seconds = idle_seconds
        self._by_token: dict[str, Session] = {}

    def create(self, user: str) -> tuple[str, Session]:
        """A new session; beyond ``MAX_SESSIONS`` the least recently used one ends, so
        a script that logs in again and again cannot grow memory without bound."""
        if len(self._by_token) >= MAX_SESSIONS:
            now = time.monotonic()
            for stale in [t for t, s in self._by_token.items() if self._expired(s, now)]:
                del self._by_token[stale]
        if len(self._by_token) >= MAX_SESSIONS:
            oldest = min(self._by_token, key=lambda t: self._by_token[t].last_seen)
            del self._by_token[oldest]
        token = secrets.token_urlsafe(32)
        now = time.monotonic()
        session = Session(user=user, csrf=secrets.token_urlsafe(32), created=now,
                          last_seen=now)
        self._by_token[token] = session
        return token, session

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        session = self._by_token.get(token)
        if session is None:
            return None
        now = time.monotonic()
        if self._expired(session, now):
            del self._by_token[token]
            return None
        session.last_seen = now
        return session

    def _expired(self, session: Session, now: float) -> bool:
        return (now - session.last_seen > self.idle_seconds
                or now - session.created > ABSOLUTE_SESSION_LIFETIME)

    def drop(self, token: str | None) -> None:
        if token:
            self._by_token.pop(token, None)

    def drop_all(self) -> None:
        """After a password change every session ends (the changer gets a new one)."""
        self._by_token.clear()


def csrf_matches(session: Session, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(session.csrf.encode(),
                                                          presented.encode())
