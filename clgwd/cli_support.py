"""Small helpers shared by CLI commands: console output and the control socket."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp


def print_banner(lines: Sequence[str]) -> None:
    """Print a framed block so URLs stand out in a terminal or the journal."""
    width = max(len(line) for line in lines)
    rule = "=" * (width + 4)
    print(rule, file=sys.stdout)
    for line in lines:
        print(f"| {line:<{width}} |", file=sys.stdout)
    print(rule, file=sys.stdout, flush=True)


async def control_request(socket_path: Path, method: str, url: str,
                          total_timeout: float = 30, body: Any = None) -> tuple[int, Any]:
    """One request to the running daemon's control socket: ``(HTTP status, JSON)``."""
    connector = aiohttp.UnixConnector(path=str(socket_path))
    timeout = aiohttp.ClientTimeout(total=total_timeout)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
        session.request(method, f"http://clgwd{url}", json=body) as resp,
    ):
        return resp.status, await resp.json()
