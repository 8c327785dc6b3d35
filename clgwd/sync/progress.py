"""What a running sync is doing, for the page's progress bar and ``sync.status``.

One ``SyncProgress`` per run, written by the engine only (on the event loop) and read
by the status answer: the phase (``reading`` the PBX, ``comparing`` with the last
synced state, ``saving`` snapshot, history and outbox in one transaction), the counts
known so far, and ``done``/``total`` where the work can be counted, in ``unit``s
(saving counts the ``changes`` written; a PBX read is counted by a source that offers
``read_progress()``: the file sources in ``bytes`` of the file's size, the SQL sources
in ``users`` or ``rows`` of a ``COUNT`` taken first; without a total the bar is
indeterminate, and ``done`` may still say how much arrived). After the run,
``sending`` is not part of it: the changes wait in the outbox for the cloud link, and
``sync.status`` reports how many are still queued.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Phase(StrEnum):
    READING = "reading"
    COMPARING = "comparing"
    SAVING = "saving"
    SENDING = "sending"


ReadProgress = Callable[[], tuple[int, int | None, str]]
"""``(done, total or None, unit)`` of a read under way (``clgwd.pbx.model.ReadMeter``)."""


@dataclass
class SyncProgress:
    run_id: str
    trigger: str
    actor: str
    started_at: float = field(default_factory=time.time)
    phase: Phase = Phase.READING
    done: int | None = None
    total: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    read_progress: ReadProgress | None = None
    _mono: float = field(default_factory=time.monotonic)

    def enter(self, phase: Phase, total: int | None = None) -> None:
        self.phase, self.total = phase, total
        self.done = 0 if total is not None else None

    def as_json(self) -> dict[str, Any]:
        done, total = self.done, self.total
        unit = "changes" if self.phase == Phase.SAVING else None
        if self.phase == Phase.READING and self.read_progress is not None:
            done, total, unit = self.read_progress()
        return {"run_id": self.run_id, "trigger": self.trigger, "actor": self.actor,
                "phase": self.phase.value, "started_at": self.started_at,
                "elapsed": round(time.monotonic() - self._mono, 1),
                "done": done, "total": total, "unit": unit,
                "determinate": total is not None and total > 0,
                "counts": dict(self.counts)}
