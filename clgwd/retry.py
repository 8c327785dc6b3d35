"""The one retry policy: exponential, capped, full jitter (every loop that retries).

Full jitter (the n-th delay uniform in ``[0, min(cap, base * 2**n))``) spreads a fleet
that failed at the same instant (the cloud went away, a switch rebooted under a
hundred gateways) over the whole window instead of synchronised waves. A hint from the
peer (``Retry-After``, goaway) or a loop's own minimum is a floor, not a replacement.

Users: the cloud link's reconnect and certificate renewal, the sync schedule after a
failed read, the mDNS advertiser, the DHCP client supervision, the SIP trunks' TCP/TLS
reconnects. Each takes a ``Backoff`` (or a factory of them) so a test can inject one
with a recording random source and see the windows the loop asked for, instead of
timing sleeps.
"""

from __future__ import annotations

import random
from typing import Final

_MAX_EXPONENT: Final = 32


class Backoff:
    """Delays for one retrying loop; ``reset()`` once the thing retried works again."""

    def __init__(self, base: float, cap: float, rng: random.Random | None = None) -> None:
        if base <= 0 or cap < base:
            raise ValueError(f"backoff needs 0 < base <= cap (got base={base}, cap={cap})")
        self.base = base
        self.cap = cap
        self.attempts = 0
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    def window(self, attempt: int) -> float:
        """The upper bound of the ``attempt``-th delay (0-based): ``min(cap, base*2^n)``."""
        return min(self.cap, self.base * 2.0 ** min(max(attempt, 0), _MAX_EXPONENT))

    def delay(self, attempt: int, floor: float = 0.0) -> float:
        """The ``attempt``-th delay, for loops that count their own failures."""
        return max(floor, self._rng.uniform(0, self.window(attempt)))

    def next_delay(self, floor: float = 0.0) -> float:
        """The next wait in seconds (at least ``floor``, e.g. a Retry-After)."""
        delay = self.delay(self.attempts, floor)
        self.attempts += 1
        return delay

    def reset(self) -> None:
        self.attempts = 0

    def skip_to(self, attempts: int) -> None:
        """Start the next wait from a wider window (never narrows the current one)."""
        self.attempts = max(self.attempts, attempts)
