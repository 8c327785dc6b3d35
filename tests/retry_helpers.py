"""A random source that records the windows a retrying loop asked for."""

from __future__ import annotations

import random


class RecordingRandom(random.Random):
    """``uniform(a, b)`` records ``b`` (the backoff window) and returns ``a``: the
    loop waits nothing, and the test reads which windows the policy produced."""

    def __init__(self) -> None:
        super().__init__(0)
        self.windows: list[float] = []

    def uniform(self, a: float, b: float) -> float:
        self.windows.append(b)
        return a
