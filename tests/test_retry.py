"""The one retry policy (``clgwd.retry``): exponential, capped, full jitter."""

from __future__ import annotations

import random

import pytest

from clgwd.retry import Backoff
from tests.retry_helpers import RecordingRandom


def test_backoff_is_full_jitter_within_growing_capped_windows() -> None:
    """The n-th delay lies in [0, min(cap, base*2^n)); the cap holds; reset starts over."""
    backoff = Backoff(1.0, 300.0, random.Random(1))
    for n in range(20):
        delay = backoff.next_delay()
        assert 0 <= delay < min(300.0, 2.0 ** n)
    samples = [Backoff(1.0, 300.0, random.Random(i)) for i in range(200)]
    for b in samples:
        b.attempts = 10
    delays = [b.next_delay() for b in samples]
    assert max(delays) < 300 and min(delays) < 30 and max(delays) > 250, "not spread"
    backoff.reset()
    assert backoff.next_delay() < 1.0


def test_backoff_floor_and_skip_to() -> None:
    """Retry-After is a floor; skip_to widens but never narrows the window."""
    backoff = Backoff(1.0, 300.0, random.Random(2))
    assert backoff.next_delay(floor=7.5) >= 7.5
    backoff.reset()
    backoff.skip_to(2)
    assert backoff.attempts == 2
    backoff.skip_to(1)
    assert backoff.attempts == 2


def test_delay_by_attempt_number_does_not_advance_the_policy() -> None:
    """``delay(n)`` draws from the n-th window without counting an attempt."""
    rng = RecordingRandom()
    backoff = Backoff(30.0, 600.0, rng)
    assert backoff.delay(3, floor=5.0) == 5.0
    backoff.delay(10)
    backoff.delay(-1)
    assert rng.windows == [240.0, 600.0, 30.0]
    assert backoff.attempts == 0


@pytest.mark.parametrize(("base", "cap"), [(0.0, 1.0), (-1.0, 5.0), (10.0, 5.0)])
def test_a_policy_that_would_spin_or_never_grow_is_refused(base: float, cap: float) -> None:
    """A zero base would retry in a tight loop; a cap under the base is a typo."""
    with pytest.raises(ValueError, match="0 < base <= cap"):
        Backoff(base, cap)
