"""``logs.collect``: the daemon's recent log lines for support, secrets scrubbed.

Under systemd the journal has everything since boot, so ``journalctl -u clgwd --since
... -o cat`` is asked first (in a subprocess; it needs the daemon user to be allowed to
read the journal). When that is unavailable or fails, the process's in-memory log buffer
(``clgwd.logbuffer``, shared with the page's support bundle) is used: the last records
of this process, with their times, so ``since_hours`` filters them. Known secret
values are scrubbed either way, records marked ``console_only`` (the setup code) never
enter the buffer, and journal lines with the setup code's message are dropped.

The answer is bounded (``system.logs_max_bytes``): the newest lines are kept and
``truncated`` says so.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Mapping, Sequence
from typing import Any, Final

from clgwd.logsetup import scrub_secrets
from clgwd.system.errors import InvalidParams

JOURNAL_TIMEOUT: Final = 20.0
MAX_SINCE_HOURS: Final = 168
CONSOLE_ONLY_MESSAGES: Final = ("Setup code for the first visit",)
"""Journal lines that are for the local console only (they carry the setup code)."""


def since_hours(params: Mapping[str, Any]) -> int:
    unknown = sorted(str(k) for k in params if k != "since_hours")
    if unknown:
        raise InvalidParams(f"unknown field(s) {', '.join(unknown)}; expected since_hours")
    value = params.get("since_hours", 24)
    if not isinstance(value, int) or isinstance(value, bool) \
            or not 1 <= value <= MAX_SINCE_HOURS:
        raise InvalidParams(f"since_hours: must be a whole number of hours, "
                                f"1-{MAX_SINCE_HOURS}")
    return value


async def read_journal(hours: int, unit: str = "clgwd") -> list[str] | None:
    """The unit's journal lines of the last ``hours``; None when this process does not
    log to the journal (no ``JOURNAL_STREAM``) or it cannot be read."""
    if not os.environ.get("JOURNAL_STREAM"):
        return None
    journalctl = await asyncio.to_thread(shutil.which, "journalctl")
    if journalctl is None:
        return None
    try:
        proc = await asyncio.create_subprocess_exec(
            journalctl, "-u", unit, "--since", f"-{hours}h", "-o", "cat", "--no-pager",
            "-q", stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL)
    except OSError:
        return None
    try:
        async with asyncio.timeout(JOURNAL_TIMEOUT):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return None
    if proc.returncode != 0:
        return None
    lines = out.decode("utf-8", errors="replace").splitlines()
    return [line for line in lines if not any(m in line for m in CONSOLE_ONLY_MESSAGES)]


def bounded(lines: Sequence[str], max_bytes: int) -> tuple[list[str], bool]:
    """The newest lines that fit in ``max_bytes`` (UTF-8, one newline each), scrubbed;
    and whether older ones were left out."""
    kept: list[str] = []
    size = 0
    for raw in reversed(lines):
        line = scrub_secrets(raw)
        size += len(line.encode()) + 1
        if size > max_bytes:
            return kept[::-1], True
        kept.append(line)
    return kept[::-1], False
