"""Lockout back-off, session expiry and the setup code format, with a fake clock."""

from __future__ import annotations

import pytest

from clgwd.web import auth


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(auth.time, "monotonic", fake)
    return fake


def _locked_for(throttle: auth.Throttle, client: str) -> int | None:
    try:
        throttle.check(client)
    except auth.LockedOut as err:
        return err.retry_after
    return None


def test_backoff_doubles_per_client_and_is_capped(clock: Clock) -> None:
    throttle = auth.Throttle()
    for _ in range(auth.FREE_FAILURES - 1):
        throttle.failed("a")
    assert _locked_for(throttle, "a") is None
    waits = []
    for _ in range(6):
        throttle.failed("a")
        waits.append(_locked_for(throttle, "a"))
    assert waits == [2, 4, 8, 16, 32, 64]
    assert _locked_for(throttle, "b") is None  # another address is not punished
    clock.now += 64
    assert _locked_for(throttle, "a") is None
    for _ in range(20):
        throttle.failed("a")
    assert _locked_for(throttle, "a") == auth.MAX_LOCKOUT
    throttle.succeeded("a")
    assert _locked_for(throttle, "a") is None


def test_sessions_expire_when_idle_and_after_twelve_hours(clock: Clock) -> None:
    sessions = auth.Sessions(idle_seconds=60)
    token, session = sessions.create("admin")
    clock.now += 59
    assert sessions.get(token) is session
    clock.now += 61
    assert sessions.get(token) is None
    token, session = sessions.create("admin")
    start = clock.now
    while sessions.get(token) is not None:  # kept busy, it still ends after 12 h
        clock.now += 59
    assert auth.ABSOLUTE_SESSION_LIFETIME < clock.now - start <= (
        auth.ABSOLUTE_SESSION_LIFETIME + 59)


def test_csrf_compare() -> None:
    _, session = auth.Sessions(60).create("admin")
    assert auth.csrf_matches(session, session.csrf)
    assert not auth.csrf_matches(session, None)
    assert not auth.csrf_matches(session, session.csrf[:-1])


def test_setup_code_format_and_normalisation() -> None:
    code = auth.setup_code_from_key("k" * 64)
    assert len(code) == 11 and code[5] == "-"
    assert code != auth.setup_code_from_key("j" * 64)
    assert auth.normalize_code(f"  {code.lower().replace('-', ' ')} ") == code


def test_session_count_is_bounded(clock: Clock) -> None:
    """Logging in again and again ends the least recently used sessions."""
    sessions = auth.Sessions(idle_seconds=600)
    first, _ = sessions.create("admin")
    clock.now += 1
    kept, _ = sessions.create("admin")
    for _ in range(auth.MAX_SESSIONS * 3):
        clock.now += 0.01
        assert sessions.get(kept) is not None  # in use: never the one dropped
        sessions.create("admin")
    assert sessions.get(first) is None
    assert sessions.get(kept) is not None
    assert len(sessions._by_token) == auth.MAX_SESSIONS
