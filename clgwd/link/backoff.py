"""Reconnect delays: exponential with full jitter, so many gateways never retry in step.

Full jitter (delay uniform in ``[0, min(cap, base * 2**n))``) spreads a fleet that lost
its cloud at the same instant over the whole window instead of synchronised waves. A
``Retry-After`` or goaway hint from the cloud is a floor, not a replacement.
"""

from __future__ import annotations

import random
from typing import Final

_MAX_EXPONENT: Final = 32


class Backoff:
    """Delay generator for one link; ``reset()`` after a connection proved stable."""

    def __init__(self, base: float, cap: float, rng: random.Random | None = None) -> None:
        self.base = base
        self.cap = cap
        self.attempts = 0
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    def next_delay(self, floor: float = 0.0) -> float:
        """The next wait in seconds (at least ``floor``, e.g. a Retry-After)."""
        window = min(self.cap, self.base * 2 ** min(self.attempts, _MAX_EXPONENT))
        self.attempts += 1
        return max(floor, self._rng.uniform(0, window))

    def reset(self) -> None:
        self.attempts = 0

    def skip_to(self, attempts: int) -> None:
        """Start the next wait from a wider window (never narrows the current one)."""
        self.attempts = max(self.attempts, attempts)
