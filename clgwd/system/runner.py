"""Run an appliance command (reboot, update) without blocking the loop, with a timeout.

The command is an argv list from the config file (never a shell string, never from the
cloud). Output is read as it comes so a chatty update cannot fill a pipe and hang; only
the last lines are kept, scrubbed of known secrets before they reach history or the
cloud. A command that outlives its timeout is killed with its whole process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from clgwd.logsetup import scrub_secrets

_LOGGER = logging.getLogger(__name__)

TAIL_LINES: Final = 40
MAX_LINE: Final = 500
KILL_GRACE: Final = 5.0
"""Seconds between SIGTERM and SIGKILL for a command past its timeout."""


@dataclass(frozen=True)
class CommandResult:
    """What history, the outbox and the page are told about one run."""

    argv: tuple[str, ...]
    exit_code: int | None
    """None when the command could not start or was killed at its timeout."""
    output_tail: tuple[str, ...]
    duration: float
    error: str = ""
    """Why it failed when there is no useful exit code (not found, timeout)."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def as_json(self) -> dict[str, Any]:
        return {"command": list(self.argv), "exit_code": self.exit_code, "ok": self.ok,
                "output_tail": list(self.output_tail),
                "duration_s": round(self.duration, 3), "error": self.error}

    def summary(self) -> str:
        if self.ok:
            return f"succeeded in {self.duration:.1f} s"
        if self.exit_code is None:
            return self.error
        last = self.output_tail[-1] if self.output_tail else "no output"
        return f"exited with code {self.exit_code} ({last})"


async def run_command(argv: Sequence[str], limit: float, *,
                      env: Mapping[str, str] | None = None) -> CommandResult:
    """Run ``argv`` to completion (or ``limit`` seconds); never raises for a failing command."""
    started = time.monotonic()
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            env=dict(env) if env is not None else None)
    except OSError as err:
        return CommandResult(tuple(argv), None, (), time.monotonic() - started,
                             f"cannot start {argv[0]}: {err.strerror or err}")
    try:
        async with asyncio.timeout(limit):
            await _read_tail(proc, tail)
            code = await proc.wait()
    except TimeoutError:
        await _kill_group(proc)
        return CommandResult(tuple(argv), None, tuple(tail), time.monotonic() - started,
                             f"timed out after {limit:.0f} s and was killed")
    except BaseException:
        await _kill_group(proc)
        raise
    return CommandResult(tuple(argv), code, tuple(tail), time.monotonic() - started)


async def _read_tail(proc: asyncio.subprocess.Process, tail: deque[str]) -> None:
    assert proc.stdout is not None
    while True:
        try:
            raw = await proc.stdout.readline()
        except ValueError:  # a line longer than the stream limit: take what is there
            raw = await proc.stdout.read(64 * 1024)
        if not raw:
            return
        tail.append(scrub_secrets(raw.decode("utf-8", errors="replace").rstrip()[:MAX_LINE]))


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM the command's process group, SIGKILL it after a grace period."""
    if proc.returncode is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            await asyncio.wait_for(asyncio.shield(proc.wait()), KILL_GRACE)
        except TimeoutError:
            continue
        return
    _LOGGER.warning("Command with pid %d did not die after SIGKILL", proc.pid)
