"""Writing the DNS servers (static or from DHCP leases) to a resolv.conf, atomically.

Atomic (temp file in the same directory, fsync, rename) because every resolver in the
system reads this file at any moment: a half-written file means failed lookups. The
path is configurable (``network.resolv_conf``) so tests never touch /etc/resolv.conf,
which the host's package managers depend on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

_LOGGER = logging.getLogger(__name__)

MAX_NAMESERVERS: Final = 3
"""glibc uses at most three ``nameserver`` lines (MAXNS)."""


def render_resolv_conf(servers: Sequence[str], search: Sequence[str] = ()) -> str:
    """The file content for ``servers`` (deduplicated, in order, at most three)."""
    unique = list(dict.fromkeys(servers))[:MAX_NAMESERVERS]
    lines = ["# Written by clgwd from the network port configuration; edits are replaced."]
    if search:
        lines.append("search " + " ".join(dict.fromkeys(search)))
    lines.extend(f"nameserver {server}" for server in unique)
    return "\n".join(lines) + "\n"


def _write_atomic(path: Path, content: str) -> bool:
    """Replace ``path`` with ``content`` unless it already holds it (blocking)."""
    try:
        if path.read_text(encoding="utf-8") == content:
            return False
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".resolv.conf.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


async def write_resolv_conf(path: Path, servers: Sequence[str],
                            search: Sequence[str] = ()) -> bool:
    """Write the file if its content changes; returns whether it was written."""
    content = render_resolv_conf(servers, search)
    changed = await asyncio.to_thread(_write_atomic, path, content)
    if changed:
        _LOGGER.info("DNS servers in %s: %s", path, ", ".join(servers) or "(none)")
    return changed
